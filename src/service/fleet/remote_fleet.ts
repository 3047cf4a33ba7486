// The remote fleet (docs/fleet.md "Remote fleet"): nodes an operator runs on other machines
// (`coffer hsm serve --management-port …`) and registers by their management endpoint. The fleet
// hands out registered blank nodes and takes them back zeroised; it never starts or stops a process.
//
//   - Registration authenticates the node by its device attestation against the manufacturer and
//     operator roots (ManagementClient.identity(): the device and operator certificates chain to
//     the roots and the device key attests this connection's TLS leaf); an untrusted node is
//     refused with COFFER_FLEET_UNTRUSTED, one holding a cluster with COFFER_FLEET_NODE_NOT_BLANK.
//     The node is known by its serial from then on: registering the same serial again updates its
//     endpoints (a node that moved).
//   - Where clients connect: the data-plane address is the registration's `dataPlaneHost`, else
//     the address the node reports it is bound to (health `dataPlaneHost`) unless that is a
//     wildcard, else the management host; the port is the registration's `dataPlanePort`, else the
//     one the node reports (health `dataPlanePort`). A node too old to report it must be registered
//     with it.
//   - Persistence: `<dir>/remote-fleet.json` (fleet_file.ts, replaced atomically): every node with
//     its serial, endpoints and whether it is free, handed out, or owed a zeroise (a release that
//     could not reach it: never handed out again until a release or a registration finds it blank).
//   - Watch: a handed-out node's health is probed every `watchIntervalMs`; the first failed probe
//     is reported as `unreachable` (a busy answer is an answer: the node is alive). Reattach verifies the node again (an operator's
//     supervisor restarts a dead one); it cannot restart it.

import { randomInt } from 'node:crypto';
import { join, resolve } from 'node:path';
import { CofferError, fail, isCofferError } from '../../errors.js';
import { ManagementClient } from '../../management/client.js';
import type { DeviceExit, Fleet, FleetDevice, ProvisionRequest } from './fleet_port.js';
import { RecordFields, readFleetFile, writeFleetFile } from './fleet_file.js';
import { attestedSerial, cachedClient, isBlank, verifyDevice, type ClientCache, type FleetCredentials } from './verify.js';

export const REMOTE_FLEET_FILE = 'remote-fleet.json';
const REMOTE_FLEET_FORMAT = 'coffer-remote-fleet';
const REMOTE_FLEET_VERSION = 1;
/** How often a handed-out node's health is probed. */
export const REMOTE_WATCH_INTERVAL_MS = 10_000;
/** A probe that stays silent this long counts as failed. Well above what a node's health waits for
 * while its device computes (seconds at 100k objects, docs/node.md "Management interface"). */
export const REMOTE_PROBE_TIMEOUT_MS = 60_000;
const DEVICE_ID_CHARS = 'abcdefghijklmnopqrstuvwxyz234567';
const DEVICE_ID_LENGTH = 12;
const DEVICE_ID = /^remote-[a-z2-7]{12}$/;
const TCP_PORT_MAX = 65535;
const WILDCARDS = new Set(['0.0.0.0', '::', '']);
/** Host names and addresses as registrations give them. */
const HOST = /^[0-9A-Za-z.:_-]{1,253}$/;

/** What an operator registers. */
export interface RemoteNodeRegistration {
  /** Where the control plane reaches the node's management interface. */
  readonly managementHost: string;
  readonly managementPort: number;
  /** Where clients reach its data plane; default: see the module header. */
  readonly dataPlaneHost?: string;
  readonly dataPlanePort?: number;
}

export interface RemoteFleetOptions extends FleetCredentials {
  /** The fleet directory: remote-fleet.json. */
  readonly dir: string;
  /** Default REMOTE_WATCH_INTERVAL_MS. */
  readonly watchIntervalMs?: number;
}

interface RemoteRecord {
  readonly deviceId: string;
  readonly serial: string;
  host: string;
  port: number;
  managementHost: string;
  managementPort: number;
  state: 'free' | 'assigned' | 'zeroise-owed';
}

/** A registered node as an operator lists it. */
export interface RegisteredNode extends FleetDevice {
  readonly state: RemoteRecord['state'];
}

export class RemoteFleet implements Fleet {
  readonly #options: RemoteFleetOptions;
  readonly #file: string;
  readonly #records = new Map<string, RemoteRecord>();
  readonly #clients: ClientCache = new Map();
  readonly #watches = new Map<string, { timer: NodeJS.Timeout | undefined; client: ManagementClient; stopped: boolean }>();
  readonly #listeners = new Set<(exit: DeviceExit) => void>();
  #closed = false;

  private constructor(options: RemoteFleetOptions) {
    this.#options = options;
    this.#file = join(resolve(options.dir), REMOTE_FLEET_FILE);
  }

  static open(options: RemoteFleetOptions): Promise<RemoteFleet> {
    const fleet = new RemoteFleet(options);
    for (const r of readFleetFile(fleet.#file, REMOTE_FLEET_FORMAT, REMOTE_FLEET_VERSION, decodeRecord)) fleet.#records.set(r.deviceId, r);
    return Promise.resolve(fleet);
  }

  /** Every registered node. */
  registered(): RegisteredNode[] {
    return [...this.#records.values()].map((r) => ({ ...deviceOf(r), state: r.state }));
  }

  /** Authenticates a node by its attestation and registers it (see the module header). */
  async register(input: RemoteNodeRegistration): Promise<RegisteredNode> {
    this.#open();
    checkEndpoint(input.managementHost, input.managementPort);
    const o = this.#options;
    const client = new ManagementClient({ host: input.managementHost, port: input.managementPort, ...credentialsOf(o) });
    try {
      const serial = await attestedSerial(client);
      const health = await client.health();
      if (health.provisioning !== 'COMMISSIONED' || health.serial !== serial) fail('COFFER_FLEET_UNTRUSTED', { reason: 'not-commissioned' });
      const existing = [...this.#records.values()].find((r) => r.serial === serial);
      const blank = isBlank(health);
      if (!blank && existing?.state !== 'assigned') fail('COFFER_FLEET_NODE_NOT_BLANK', { cluster: health.cluster });
      const reportedHost = health.dataPlaneHost !== null && !WILDCARDS.has(health.dataPlaneHost) ? health.dataPlaneHost : undefined;
      const host = input.dataPlaneHost ?? reportedHost ?? input.managementHost;
      const port = input.dataPlanePort ?? health.dataPlanePort ?? fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'data-plane-port-unknown' });
      checkEndpoint(host, port);
      const clash = [...this.#records.values()].find((r) => r.serial !== serial && r.host === host && r.port === port);
      if (clash !== undefined) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'in-use' });
      const endpoints = { host, port, managementHost: input.managementHost, managementPort: input.managementPort };
      const record: RemoteRecord = existing === undefined
        ? { deviceId: newDeviceId(), serial, ...endpoints, state: 'free' }
        : Object.assign(existing, endpoints, existing.state === 'zeroise-owed' && blank ? { state: 'free' } : {});
      this.#records.set(record.deviceId, record);
      this.#persist();
      if (this.#watches.has(record.deviceId)) this.#watch(record); // a handed-out node that moved
      return { ...deviceOf(record), state: record.state };
    } finally {
      client.close();
    }
  }

  /** Forgets a node that is not handed out. */
  deregister(deviceId: string): void {
    const record = this.#records.get(deviceId);
    if (record === undefined) return;
    if (record.state === 'assigned') fail('COFFER_FLEET_NODE_NOT_BLANK', { reason: 'handed-out' });
    this.#records.delete(deviceId);
    this.#persist();
  }

  async provision(request: ProvisionRequest): Promise<FleetDevice> {
    this.#open();
    const all = [...this.#records.values()];
    if (request.eniIp !== undefined) {
      const there = all.filter((r) => r.host === request.eniIp);
      if (there.length === 0) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'not-a-fleet-address' });
      if (there.every((r) => r.state !== 'free')) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'in-use' });
    }
    const candidates = all.filter((r) => r.state === 'free' && (request.eniIp === undefined || r.host === request.eniIp)
      && (request.dataPlanePort === 0 || r.port === request.dataPlanePort));
    let last: CofferError | undefined;
    for (const record of candidates) {
      record.state = 'assigned'; // taken from here on, also for a provision running beside this one
      try {
        await verifyDevice(this.management(deviceOf(record)), deviceOf(record), { blank: true, mode: request.mode ?? 'NON_FIPS' });
        this.#persist();
        this.#watch(record);
        return deviceOf(record);
      } catch (e) {
        record.state = 'free';
        if (!isCofferError(e)) throw e;
        last = e;
      }
    }
    if (last !== undefined && request.eniIp !== undefined) throw last;
    return fail('COFFER_FLEET_EXHAUSTED', { reason: candidates.length === 0 ? 'no-free-node' : 'none-verified' });
  }

  async reattach(device: FleetDevice): Promise<FleetDevice> {
    this.#open();
    const record = this.#records.get(device.deviceId);
    if (record?.serial !== device.serial || record.state !== 'assigned') return fail('COFFER_FLEET_DEVICE_LOST', { reason: 'unknown-device' });
    try {
      await verifyDevice(this.management(deviceOf(record)), deviceOf(record), { blank: false });
    } catch (e) {
      if (!isCofferError(e)) throw e;
      throw new CofferError('COFFER_FLEET_DEVICE_LOST', { reason: 'unreachable', cause: e.code }, { cause: e });
    }
    this.#watch(record);
    return deviceOf(record);
  }

  management(device: FleetDevice): ManagementClient {
    return cachedClient(this.#clients, this.#options, device);
  }

  /** Zeroises the node and returns it to the free pool; when it cannot be reached it is owed a
   * zeroise (never handed out) and the error is raised, so the caller can release it again. */
  async release(device: FleetDevice): Promise<void> {
    this.#open();
    const record = this.#records.get(device.deviceId);
    if (record === undefined || record.state === 'free') return;
    this.#unwatch(record.deviceId);
    try {
      await this.management(deviceOf(record)).zeroise();
    } catch (e) {
      record.state = 'zeroise-owed';
      this.#persist();
      throw e;
    }
    record.state = 'free';
    this.#persist();
  }

  onDeviceExit(listener: (exit: DeviceExit) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops watching and closes clients; remote nodes are never stopped by the fleet. */
  close(): Promise<void> {
    this.#closed = true;
    for (const id of [...this.#watches.keys()]) this.#unwatch(id);
    for (const c of this.#clients.values()) c.client.close();
    this.#clients.clear();
    return Promise.resolve();
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────

  #open(): void {
    if (this.#closed) fail('COFFER_FLEET_EXHAUSTED', { reason: 'closed' });
  }

  #persist(): void {
    writeFleetFile(this.#file, REMOTE_FLEET_FORMAT, REMOTE_FLEET_VERSION, [...this.#records.values()]);
  }

  /** Probes the node's health every interval (one probe at a time); reports the first failure. */
  #watch(record: RemoteRecord): void {
    this.#unwatch(record.deviceId);
    const device = deviceOf(record);
    const client = new ManagementClient({
      host: device.managementHost, port: device.managementPort, ...credentialsOf(this.#options), expectedSerial: device.serial, idleTimeoutMs: REMOTE_PROBE_TIMEOUT_MS,
    });
    const watch = { timer: undefined as NodeJS.Timeout | undefined, client, stopped: false };
    const probe = (): void => {
      client.health().then(
        () => {
          if (!watch.stopped) schedule();
        },
        (e: unknown) => {
          if (watch.stopped) return;
          if (isCofferError(e, 'COFFER_NODE_BUSY')) return schedule(); // it answered: alive
          this.#unwatch(record.deviceId);
          const exit: DeviceExit = { device, reason: 'unreachable', code: null, signal: null };
          for (const l of this.#listeners) l(exit);
        },
      );
    };
    const schedule = (): void => {
      watch.timer = setTimeout(probe, this.#options.watchIntervalMs ?? REMOTE_WATCH_INTERVAL_MS);
      watch.timer.unref();
    };
    this.#watches.set(record.deviceId, watch);
    schedule();
  }

  #unwatch(deviceId: string): void {
    const watch = this.#watches.get(deviceId);
    if (watch === undefined) return;
    watch.stopped = true;
    clearTimeout(watch.timer);
    watch.client.close();
    this.#watches.delete(deviceId);
  }
}

function credentialsOf(o: FleetCredentials): FleetCredentials {
  return { certificatePem: o.certificatePem, keyPem: o.keyPem, manufacturerRootPem: o.manufacturerRootPem, operatorRootPem: o.operatorRootPem };
}

function checkEndpoint(host: string, port: number): void {
  if (!HOST.test(host)) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'bad-host' });
  if (!Number.isInteger(port) || port < 1 || port > TCP_PORT_MAX) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'bad-port' });
}

function deviceOf(r: RemoteRecord): FleetDevice {
  return { deviceId: r.deviceId, serial: r.serial, host: r.host, port: r.port, managementHost: r.managementHost, managementPort: r.managementPort };
}

function newDeviceId(): string {
  let id = 'remote-';
  for (let i = 0; i < DEVICE_ID_LENGTH; i++) id += DEVICE_ID_CHARS[randomInt(DEVICE_ID_CHARS.length)];
  return id;
}

function decodeRecord(value: unknown): RemoteRecord {
  const f = new RecordFields(value, REMOTE_FLEET_FORMAT);
  return {
    deviceId: f.string('deviceId', DEVICE_ID), serial: f.string('serial'), host: f.string('host', HOST), port: f.integer('port', 1, TCP_PORT_MAX),
    managementHost: f.string('managementHost', HOST), managementPort: f.integer('managementPort', 1, TCP_PORT_MAX),
    state: f.string('state', /^(free|assigned|zeroise-owed)$/) as RemoteRecord['state'],
  };
}
