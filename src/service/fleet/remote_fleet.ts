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
//   - Persistence: the registry is one document of the metadata store (remote_registry.ts), changed
//     only by compare-and-set, so every service process of a region sees the same nodes and a
//     registration through any of them is safe beside the orchestrating process's provisions and
//     releases. Each node has its serial, endpoints and whether it is free, handed out (with the
//     HSM it serves), or owed a zeroise (a release that could not reach it: never handed out again
//     until a release or a registration finds it blank).
//   - Watch: a handed-out node's health is probed every `watchIntervalMs`; the first failed probe
//     is reported as `unreachable` (a busy answer is an answer: the node is alive). Reattach
//     verifies the node again (an operator's supervisor restarts a dead one); it cannot restart it.

import { randomInt } from 'node:crypto';
import { CofferError, fail, isCofferError } from '../../errors.js';
import { ManagementClient } from '../../management/client.js';
import type { MetadataStore } from '../../storage/metadata_port.js';
import type { DeviceExit, Fleet, FleetDevice, ProvisionRequest } from './fleet_port.js';
import { REMOTE_HOST, readRegistry, updateRegistry, type RemoteRecord, type RemoteState } from './remote_registry.js';
import { attestedSerial, cachedClient, checkJournalMode, isBlank, verifyDevice, type ClientCache, type FleetCredentials } from './verify.js';

/** How often a handed-out node's health is probed. */
export const REMOTE_WATCH_INTERVAL_MS = 10_000;
/** A probe that stays silent this long counts as failed. Well above what a node's health waits for
 * while its device computes (seconds at 100k objects, docs/node.md "Management interface"). */
export const REMOTE_PROBE_TIMEOUT_MS = 60_000;
const DEVICE_ID_CHARS = 'abcdefghijklmnopqrstuvwxyz234567';
const DEVICE_ID_LENGTH = 12;
const TCP_PORT_MAX = 65535;
const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** What an operator registers. */
export interface RemoteNodeRegistration {
  /** Where the control plane reaches the node's management interface. */
  readonly managementHost: string;
  readonly managementPort: number;
  /** Where clients reach its data plane; default: see the module header. */
  readonly dataPlaneHost?: string;
  readonly dataPlanePort?: number;
}

/** Which node to deregister: by the fleet's id, or by the management endpoint it was registered with. */
export type RemoteNodeSelector =
  | { readonly deviceId: string }
  | { readonly managementHost: string; readonly managementPort: number };

export interface RemoteFleetOptions extends FleetCredentials {
  /** The metadata store that holds the registry (remote_registry.ts): every service process of a
   * region opens its fleet on the same store and sees the same nodes. */
  readonly metadata: MetadataStore;
  /** Default REMOTE_WATCH_INTERVAL_MS. */
  readonly watchIntervalMs?: number;
  /** How the service orders cluster journals: a node that reports another journal mode is refused
   * at registration, hand-out and reattach (COFFER_FLEET_JOURNAL_MODE_MISMATCH). Undefined: not checked. */
  readonly journal?: 'relayed' | 'solo';
}

/** A registered node as an operator lists it. */
export interface RegisteredNode extends FleetDevice {
  readonly state: RemoteState;
  /** The mode its device was commissioned in: it serves clusters of that mode only. */
  readonly mode: 'FIPS' | 'NON_FIPS';
  /** The HSM it serves, while handed out. */
  readonly hsmId?: string;
}

export class RemoteFleet implements Fleet {
  readonly #options: RemoteFleetOptions;
  readonly #store: MetadataStore;
  readonly #clients: ClientCache = new Map();
  readonly #watches = new Map<string, { timer: NodeJS.Timeout | undefined; client: ManagementClient; stopped: boolean }>();
  readonly #listeners = new Set<(exit: DeviceExit) => void>();
  #closed = false;

  private constructor(options: RemoteFleetOptions) {
    this.#options = options;
    this.#store = options.metadata;
  }

  /** A fleet on the registry in `metadata`; a registry this build cannot read is refused here, at start. */
  static async open(options: RemoteFleetOptions): Promise<RemoteFleet> {
    await readRegistry(options.metadata);
    return new RemoteFleet(options);
  }

  /** Every registered node, as the registry holds it now (whichever service process registered it). */
  async registered(): Promise<RegisteredNode[]> {
    return (await readRegistry(this.#store)).records.map(registeredOf);
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
      const mode: RemoteRecord['mode'] = health.mode === 'FIPS' ? 'FIPS' : health.mode === 'NON_FIPS' ? 'NON_FIPS' : fail('COFFER_FLEET_UNTRUSTED', { reason: 'no-mode' });
      // A solo node in a relayed service would never offer its entries (its HSMs diverge); a relayed
      // node in a solo service would wait for a relay that never comes (every change times out).
      checkJournalMode(health, o.journal);
      const blank = isBlank(health);
      const reportedHost = health.dataPlaneHost !== null && !WILDCARDS.has(health.dataPlaneHost) ? health.dataPlaneHost : undefined;
      const host = input.dataPlaneHost ?? reportedHost ?? input.managementHost;
      const port = input.dataPlanePort ?? health.dataPlanePort ?? fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'data-plane-port-unknown' });
      checkEndpoint(host, port);
      const endpoints = { host, port, managementHost: input.managementHost, managementPort: input.managementPort, mode };
      // The node was checked above, over the network; what it is recorded as is decided on the
      // registry as it stands at the commit (re-read after a lost race).
      const record = await updateRegistry(this.#store, (records) => {
        const existing = records.find((r) => r.serial === serial);
        if (!blank && existing?.state !== 'assigned') fail('COFFER_FLEET_NODE_NOT_BLANK', { cluster: health.cluster });
        if (records.some((r) => r.serial !== serial && r.host === host && r.port === port)) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'in-use' });
        const next: RemoteRecord = existing === undefined
          ? { deviceId: newDeviceId(), serial, ...endpoints, state: 'free' }
          : { ...existing, ...endpoints, ...(existing.state === 'zeroise-owed' && blank ? { state: 'free' } : {}) };
        return { records: existing === undefined ? [...records, next] : records.map((r) => (r === existing ? next : r)), result: next };
      });
      if (this.#watches.has(record.deviceId)) this.#watch(record); // a handed-out node that moved
      return registeredOf(record);
    } finally {
      client.close();
    }
  }

  /** Forgets a node that is not handed out (COFFER_FLEET_NODE_NOT_BLANK when it is; COFFER_FLEET_NODE_UNKNOWN when none matches). */
  async deregister(selector: RemoteNodeSelector): Promise<RegisteredNode> {
    this.#open();
    return updateRegistry(this.#store, (records) => {
      const record = records.find((r) => ('deviceId' in selector
        ? r.deviceId === selector.deviceId
        : r.managementHost === selector.managementHost && r.managementPort === selector.managementPort));
      if (record === undefined) return fail('COFFER_FLEET_NODE_UNKNOWN', 'deviceId' in selector ? { by: 'deviceId' } : { by: 'management' });
      if (record.state === 'assigned') fail('COFFER_FLEET_NODE_NOT_BLANK', { reason: 'handed-out', ...(record.hsmId === undefined ? {} : { hsmId: record.hsmId }) });
      return { records: records.filter((r) => r !== record), result: registeredOf(record) };
    });
  }

  async provision(request: ProvisionRequest): Promise<FleetDevice> {
    this.#open();
    // Only the orchestrator provisions, and only for an HSM that holds no device: a node still
    // assigned to this HSM was taken by a provision a crash cut short before the HSM recorded it.
    // It is released (zeroised and freed, or owed a zeroise) before another is taken.
    for (const stray of (await readRegistry(this.#store)).records.filter((r) => r.state === 'assigned' && r.hsmId === request.hsmId)) {
      await this.release(deviceOf(stray)).catch(() => undefined);
    }
    const tried = new Set<string>();
    let last: CofferError | undefined;
    for (;;) {
      // Taken in the registry before it is verified, so no other provision (in this process or
      // another) can hand it out meanwhile.
      const record = await updateRegistry(this.#store, (records) => {
        if (request.eniIp !== undefined) {
          const there = records.filter((r) => r.host === request.eniIp);
          if (there.length === 0) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'not-a-fleet-address' });
          if (tried.size === 0 && there.every((r) => r.state !== 'free')) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'in-use' });
        }
        const free = records.find((r) => r.state === 'free' && !tried.has(r.deviceId) && (request.eniIp === undefined || r.host === request.eniIp)
          && (request.dataPlanePort === 0 || r.port === request.dataPlanePort) && r.mode === (request.mode ?? 'NON_FIPS'));
        if (free === undefined) return { result: undefined };
        const next: RemoteRecord = { ...free, state: 'assigned', hsmId: request.hsmId };
        return { records: records.map((r) => (r === free ? next : r)), result: next };
      });
      if (record === undefined) break;
      tried.add(record.deviceId);
      try {
        await verifyDevice(this.management(deviceOf(record)), deviceOf(record), { blank: true, mode: request.mode ?? 'NON_FIPS', ...this.#journal() });
        this.#watch(record);
        return deviceOf(record);
      } catch (e) {
        await this.#setState(record, 'assigned', 'free');
        if (!isCofferError(e)) throw e;
        last = e;
      }
    }
    if (last !== undefined && request.eniIp !== undefined) throw last;
    return fail('COFFER_FLEET_EXHAUSTED', { reason: tried.size === 0 ? 'no-free-node' : 'none-verified' });
  }

  async reattach(device: FleetDevice): Promise<FleetDevice> {
    this.#open();
    const record = (await readRegistry(this.#store)).records.find((r) => r.deviceId === device.deviceId);
    if (record?.serial !== device.serial || record.state !== 'assigned') return fail('COFFER_FLEET_DEVICE_LOST', { reason: 'unknown-device' });
    try {
      await verifyDevice(this.management(deviceOf(record)), deviceOf(record), { blank: false, ...this.#journal() });
    } catch (e) {
      if (!isCofferError(e) || e.code === 'COFFER_FLEET_JOURNAL_MODE_MISMATCH') throw e;
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
    const record = (await readRegistry(this.#store)).records.find((r) => r.deviceId === device.deviceId);
    if (record === undefined || record.state === 'free') return;
    this.#unwatch(record.deviceId);
    try {
      await this.management(deviceOf(record)).zeroise();
    } catch (e) {
      await this.#setState(record, undefined, 'zeroise-owed');
      throw e;
    }
    await this.#setState(record, undefined, 'free');
  }

  onDeviceExit(listener: (exit: DeviceExit) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops watching and closes clients; remote nodes are never stopped by the fleet, and the
   * metadata store stays open (it is the caller's). */
  close(): Promise<void> {
    this.#closed = true;
    for (const id of [...this.#watches.keys()]) this.#unwatch(id);
    for (const c of this.#clients.values()) c.client.close();
    this.#clients.clear();
    return Promise.resolve();
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────

  #journal(): { readonly journal?: 'relayed' | 'solo' } {
    return this.#options.journal === undefined ? {} : { journal: this.#options.journal };
  }

  #open(): void {
    if (this.#closed) fail('COFFER_FLEET_EXHAUSTED', { reason: 'closed' });
  }

  /** Sets the node's state in the registry (only when it is still the same node, and in state
   * `from` if given); leaving `assigned` forgets the HSM it served. */
  async #setState(record: RemoteRecord, from: RemoteState | undefined, to: RemoteState): Promise<void> {
    await updateRegistry(this.#store, (records) => {
      const now = records.find((r) => r.deviceId === record.deviceId && r.serial === record.serial);
      if (now === undefined || (from !== undefined && now.state !== from)) return { result: undefined };
      const { hsmId: _, ...rest } = now;
      const next: RemoteRecord = to === 'assigned' ? { ...now, state: to } : { ...rest, state: to };
      return { records: records.map((r) => (r === now ? next : r)), result: undefined };
    });
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
  if (!REMOTE_HOST.test(host)) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'bad-host' });
  if (!Number.isInteger(port) || port < 1 || port > TCP_PORT_MAX) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'bad-port' });
}

function deviceOf(r: RemoteRecord): FleetDevice {
  return { deviceId: r.deviceId, serial: r.serial, host: r.host, port: r.port, managementHost: r.managementHost, managementPort: r.managementPort };
}

function registeredOf(r: RemoteRecord): RegisteredNode {
  return { ...deviceOf(r), state: r.state, mode: r.mode, ...(r.hsmId === undefined ? {} : { hsmId: r.hsmId }) };
}

function newDeviceId(): string {
  let id = 'remote-';
  for (let i = 0; i < DEVICE_ID_LENGTH; i++) id += DEVICE_ID_CHARS[randomInt(DEVICE_ID_CHARS.length)];
  return id;
}
