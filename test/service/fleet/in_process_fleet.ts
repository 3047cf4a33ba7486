// The in-process fleet, for tests (docs/fleet.md "In-process fleet"): each device is a node served
// in this process by serveNode (src/node/serve.ts) on real sockets — its own loopback address, the
// cluster's data-plane port, a management port — over a sealed store in its own data directory, so
// that a restart from data is a real one. It lives under test/ because the service may not import
// the node layer (test/meta/layering.test.ts).
//
// The nodes serving now are this process's "process table" (`SERVED`, keyed by data directory): a
// new fleet instance on the same directory finds them there, as the local fleet finds a pid.
// `killInProcess` is what SIGKILL is to a process: the node stops serving at once, not zeroised,
// and whoever watches it hears of the exit.

import { randomUUID } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fail, isCofferError } from '../../../src/errors.js';
import type { ManagementClient } from '../../../src/management/client.js';
import { createLogger } from '../../../src/node/log.js';
import { serveNode, STORE_FILE, type ServedNode } from '../../../src/node/serve.js';
import { RecordFields, readFleetFile, writeFleetFile } from '../../../src/service/fleet/fleet_file.js';
import type { DeviceExit, Fleet, FleetDevice, ProvisionRequest } from '../../../src/service/fleet/fleet_port.js';
import { allocateLoopback } from '../../../src/service/fleet/local_fleet.js';
import { cachedClient, verifyDevice, type ClientCache, type FleetCredentials } from '../../../src/service/fleet/verify.js';

const FORMAT = 'coffer-in-process-fleet';
const VERSION = 1;
const FILE = 'fleet.json';

interface Served {
  readonly node: ServedNode;
  /** Names this serving of the device: a restart gets a new one (what a pid is to a process). */
  readonly id: string;
  readonly onExit: Set<() => void>;
}

/** The nodes this process serves, by data directory. */
const SERVED = new Map<string, Served>();

/** Stops the node serving `dataDir` as SIGKILL would stop its process: no zeroise, no goodbye. */
export async function killInProcess(dataDir: string): Promise<void> {
  const served = SERVED.get(dataDir) ?? fail('COFFER_FLEET_DEVICE_LOST', { reason: 'not-served' });
  SERVED.delete(dataDir);
  await served.node.close();
  for (const l of served.onExit) l();
}

/** The id of the serving of `dataDir`, or undefined when nothing serves it. */
export function servingOf(dataDir: string): string | undefined {
  return SERVED.get(dataDir)?.id;
}

interface Record {
  readonly deviceId: string;
  readonly serial: string;
  readonly host: string;
  readonly port: number;
  managementPort: number;
}

export interface InProcessFleetOptions extends FleetCredentials {
  /** How its devices order the cluster journal; default 'solo' (no relay needed). */
  readonly journal?: 'relayed' | 'solo';
  /** Its devices' wait for a missing journal entry (serve.ts); default the node's. */
  readonly journalMissingEntryWaitMs?: number;
  readonly dir: string;
  readonly authoritiesDir: string;
}

export class InProcessFleet implements Fleet {
  readonly #options: InProcessFleetOptions;
  readonly #dir: string;
  readonly #records = new Map<string, Record>();
  readonly #clients: ClientCache = new Map();
  readonly #listeners = new Set<(exit: DeviceExit) => void>();
  readonly #unwatch = new Map<string, () => void>();

  private constructor(options: InProcessFleetOptions) {
    this.#options = options;
    this.#dir = resolve(options.dir);
  }

  static open(options: InProcessFleetOptions): Promise<InProcessFleet> {
    const fleet = new InProcessFleet(options);
    for (const r of readFleetFile(join(fleet.#dir, FILE), FORMAT, VERSION, decodeRecord)) fleet.#records.set(r.deviceId, r);
    return Promise.resolve(fleet);
  }

  dataDir(deviceId: string): string {
    return join(this.#dir, 'devices', deviceId);
  }

  async provision(request: ProvisionRequest): Promise<FleetDevice> {
    const host = allocateLoopback(request.eniIp, new Set([...this.#records.values()].map((r) => r.host)));
    const deviceId = `inproc-${randomUUID()}`;
    const mode = request.mode ?? 'NON_FIPS';
    const served = await this.#serve(deviceId, host, request.dataPlanePort, mode);
    const record: Record = { deviceId, serial: served.node.hsm.status().serial ?? '', host, port: served.node.dataPlane.port, managementPort: served.node.management?.port ?? 0 };
    this.#records.set(deviceId, record);
    this.#persist();
    try {
      await verifyDevice(this.management(deviceOf(record)), deviceOf(record), { blank: true, mode });
    } catch (e) {
      await this.release(deviceOf(record));
      throw e;
    }
    this.#watch(record);
    return deviceOf(record);
  }

  async reattach(device: FleetDevice): Promise<FleetDevice> {
    const record = this.#records.get(device.deviceId);
    if (record?.serial !== device.serial) return fail('COFFER_FLEET_DEVICE_LOST', { reason: 'unknown-device' });
    const dataDir = this.dataDir(record.deviceId);
    if (!SERVED.has(dataDir)) {
      if (!existsSync(join(dataDir, STORE_FILE))) return fail('COFFER_FLEET_DEVICE_LOST', { reason: 'data-gone' });
      const served = await this.#serve(record.deviceId, record.host, record.port);
      if (served.node.hsm.status().serial !== record.serial) {
        await killInProcess(dataDir);
        return fail('COFFER_FLEET_DEVICE_LOST', { reason: 'serial-mismatch' });
      }
      record.managementPort = served.node.management?.port ?? 0;
      this.#persist();
    }
    await verifyDevice(this.management(deviceOf(record)), deviceOf(record), { blank: false });
    this.#watch(record);
    return deviceOf(record);
  }

  management(device: FleetDevice): ManagementClient {
    return cachedClient(this.#clients, this.#options, device);
  }

  async release(device: FleetDevice): Promise<void> {
    const record = this.#records.get(device.deviceId);
    if (record === undefined) return;
    this.#unwatch.get(record.deviceId)?.();
    try {
      await this.management(device).zeroise();
    } catch (e) {
      if (!isCofferError(e)) throw e;
    }
    const dataDir = this.dataDir(record.deviceId);
    const served = SERVED.get(dataDir);
    SERVED.delete(dataDir);
    await served?.node.close();
    this.#clients.get(record.deviceId)?.client.close();
    this.#clients.delete(record.deviceId);
    rmSync(dataDir, { recursive: true, force: true });
    this.#records.delete(record.deviceId);
    this.#persist();
  }

  onDeviceExit(listener: (exit: DeviceExit) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(options: { readonly stopDevices?: boolean } = {}): Promise<void> {
    for (const u of this.#unwatch.values()) u();
    this.#unwatch.clear();
    for (const c of this.#clients.values()) c.client.close();
    this.#clients.clear();
    if (options.stopDevices !== true) return;
    for (const r of this.#records.values()) {
      const dataDir = this.dataDir(r.deviceId);
      const served = SERVED.get(dataDir);
      SERVED.delete(dataDir);
      await served?.node.close();
    }
  }

  async #serve(deviceId: string, host: string, port: number, mode: 'FIPS' | 'NON_FIPS' = 'NON_FIPS'): Promise<Served> {
    const dataDir = this.dataDir(deviceId);
    const node = await serveNode({
      dataDir, development: true, authoritiesDir: this.#options.authoritiesDir, host, port, managementPort: 0, mode, journal: this.#options.journal ?? 'solo',
      ...(this.#options.journalMissingEntryWaitMs === undefined ? {} : { journalMissingEntryWaitMs: this.#options.journalMissingEntryWaitMs }),
      log: createLogger({ level: 'silent' }),
    });
    const served: Served = { node, id: randomUUID(), onExit: new Set() };
    SERVED.set(dataDir, served);
    return served;
  }

  #watch(record: Record): void {
    this.#unwatch.get(record.deviceId)?.();
    const served = SERVED.get(this.dataDir(record.deviceId));
    if (served === undefined) return;
    const listener = (): void => {
      const exit: DeviceExit = { device: deviceOf(record), reason: 'exited', code: null, signal: 'SIGKILL' };
      for (const l of this.#listeners) l(exit);
    };
    served.onExit.add(listener);
    this.#unwatch.set(record.deviceId, () => served.onExit.delete(listener));
  }

  #persist(): void {
    writeFleetFile(join(this.#dir, FILE), FORMAT, VERSION, [...this.#records.values()]);
  }
}

function deviceOf(r: Record): FleetDevice {
  return { deviceId: r.deviceId, serial: r.serial, host: r.host, port: r.port, managementHost: r.host, managementPort: r.managementPort };
}

function decodeRecord(value: unknown): Record {
  const f = new RecordFields(value, FORMAT);
  return {
    deviceId: f.string('deviceId', /^inproc-[0-9a-f-]{36}$/), serial: f.string('serial'), host: f.string('host'),
    port: f.integer('port', 1, 65535), managementPort: f.integer('managementPort', 1, 65535),
  };
}
