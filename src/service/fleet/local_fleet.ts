// The local fleet (docs/fleet.md "Local fleet"), the default: every device is a `coffer hsm serve`
// child process on this machine, started with the development authorities (`--development
// --authorities DIR`: the node manufactures and commissions its device on first start).
//
//   - Addresses: each device listens on its own loopback address 127.0.0.N, 2 ≤ N ≤ 254 (its
//     EniIp; Linux routes all of 127.0.0.0/8 to lo), with the cluster's one data-plane port; its
//     management interface on the same address and any free port. An address belongs to one
//     device of the fleet at a time, from provision to release.
//   - Persistence: `<dir>/fleet.json` (fleet_file.ts, replaced atomically) lists the devices, each
//     with its serial, address, ports and pid; `<dir>/devices/<deviceId>/` is its data directory.
//     A device is written down as `starting` before its process is spawned and as `ready` once it is
//     verified; a `starting` one that no provision of this process is making was never handed out
//     and is removed by the next provision (see "Several service processes" below).
//   - Reattach: a device whose pid is alive, whose command line names its data directory (Linux
//     /proc), and whose management identity verifies with the expected serial is taken back as it
//     runs; otherwise it is restarted from its data directory on the same address and port (same
//     serial: the store and device secret are its own). A process that holds the data directory but
//     does not verify is killed first: two processes must never open one store.
//   - Exits: a child's exit is reported at once; a process found by reattach (not this service's
//     child) is watched by polling its pid.
//   - Release: zeroise over management, stop the process, remove the data directory (device
//     secret included, which erases the device even when it could not be reached).
//   - Several service processes may share the directory; only the orchestrator changes it.
//     fleet.json is read again before every change, so one that takes over knows its
//     predecessor's devices, and a `starting` device it finds at provision (its predecessor was
//     killed mid-provision) is removed, process and data. Opening the fleet removes nothing: a
//     process that opens it while the orchestrator of another is provisioning would otherwise kill
//     a device that is being made; only the orchestrator (one at a time, under its lease) cleans up.
//
// The fleet never uses a key and never logs in: it reaches a device only through the management
// client (health, identity, zeroise), pinned to the device's serial.

import { randomInt } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CofferError, fail, isCofferError } from '../../errors.js';
import type { ManagementClient } from '../../management/client.js';
import type { DeviceExit, Fleet, FleetDevice, ProvisionRequest } from './fleet_port.js';
import { RecordFields, readFleetFile, writeFleetFile } from './fleet_file.js';
import { NODE_LOG_FILE, NODE_STOP_TIMEOUT_MS, isRunning, spawnNode, stopNode } from './node_process.js';
import { cachedClient, verifyDevice, type ClientCache, type FleetCredentials } from './verify.js';

export const LOCAL_FLEET_FILE = 'fleet.json';
const LOCAL_FLEET_FORMAT = 'coffer-local-fleet';
const LOCAL_FLEET_VERSION = 1;
export const DEVICES_DIR = 'devices';
/** Where the log of a device that did not start is kept (its data directory is removed). */
export const FAILED_STARTS_DIR = 'failed-starts';
/** 127.0.0.1 is the host's own; .255 is the /24's broadcast in habit if not on lo: 2..254. */
export const LOOPBACK_FIRST = 2;
export const LOOPBACK_LAST = 254;
const LOOPBACK = /^127\.0\.0\.([0-9]{1,3})$/;
/** How often a device this fleet did not start is checked for life (its pid). */
export const PID_WATCH_INTERVAL_MS = 1000;
/** How often a stopped process is checked for while the fleet waits for it to go. */
const PID_GONE_POLL_MS = 50;
const DEVICE_ID_CHARS = 'abcdefghijklmnopqrstuvwxyz234567';
const DEVICE_ID_LENGTH = 12;
const DEVICE_ID = /^local-[a-z2-7]{12}$/;
const TCP_PORT_MAX = 65535;
/** A pid as Linux hands them out (pid_max ≤ 2^22). */
const PID_MAX = 2 ** 22;

export interface LocalFleetOptions extends FleetCredentials {
  /** The fleet directory: fleet.json and the devices' data directories. */
  readonly dir: string;
  /** Development authorities (saveDevelopmentAuthorities) every device is provisioned with. */
  readonly authoritiesDir: string;
  /** The coffer CLI's main.js (dist/src/cli/main.js). */
  readonly mainJs: string;
  /** Default PID_WATCH_INTERVAL_MS. */
  readonly pidWatchIntervalMs?: number;
  /** How the devices order their cluster journal (`coffer hsm serve --journal`): 'relayed' when
   * the service relays it (ServiceOptions.relayJournal), else 'solo' (the default). */
  readonly journal?: 'relayed' | 'solo';
  /** The log level of the HSM processes this fleet starts (their node.log); default 'info'. A
   * device started by an earlier run keeps the level it was started with. */
  readonly nodeLogLevel?: string;
}

/** What fleet.json holds about a device. */
interface LocalRecord {
  readonly deviceId: string;
  state: 'starting' | 'ready';
  serial: string;
  readonly host: string;
  port: number;
  managementPort: number;
  pid: number;
  readonly clusterId: string;
  readonly hsmId: string;
}

export class LocalFleet implements Fleet {
  readonly #options: LocalFleetOptions;
  readonly #dir: string;
  readonly #records = new Map<string, LocalRecord>();
  readonly #children = new Map<string, ChildProcess>();
  readonly #watches = new Map<string, NodeJS.Timeout>();
  readonly #clients: ClientCache = new Map();
  /** Devices whose exit the fleet asked for (release, close): not reported. */
  readonly #stopping = new Set<string>();
  readonly #listeners = new Set<(exit: DeviceExit) => void>();
  /** Devices this process's provision() is starting now. */
  readonly #provisioning = new Set<string>();
  #closed = false;

  private constructor(options: LocalFleetOptions) {
    this.#options = options;
    this.#dir = resolve(options.dir);
  }

  /** Opens the fleet in `options.dir` (checking its file). Devices a crash left half-started stay
   * until the next provision: another process may be starting them now. */
  static open(options: LocalFleetOptions): Promise<LocalFleet> {
    // In an executor, so that a refused fleet file is a rejection like every other failure here.
    return new Promise((resolve) => {
      const fleet = new LocalFleet(options);
      for (const r of readFleetFile(fleet.#file(), LOCAL_FLEET_FORMAT, LOCAL_FLEET_VERSION, decodeRecord)) fleet.#records.set(r.deviceId, r);
      resolve(fleet);
    });
  }

  /** The devices the fleet holds (for an operator's listing; the control plane keeps its own). */
  devices(): FleetDevice[] {
    this.#reload();
    return [...this.#records.values()].filter((r) => r.state === 'ready').map(deviceOf);
  }

  async provision(request: ProvisionRequest): Promise<FleetDevice> {
    this.#open();
    // Only the orchestrator provisions: a half-started device it did not start itself is a
    // predecessor's, killed mid-provision; its HSM is provisioned again, so the device goes.
    const halfStarted = this.#reload();
    for (const r of halfStarted) await this.#removeHalfStarted(r);
    if (halfStarted.length > 0) this.#persist();
    const port = request.dataPlanePort;
    if (!Number.isInteger(port) || port < 0 || port > TCP_PORT_MAX) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'bad-port' });
    const host = this.#allocate(request.eniIp);
    const record: LocalRecord = { deviceId: newDeviceId(), state: 'starting', serial: '', host, port, managementPort: 0, pid: 0, clusterId: request.clusterId, hsmId: request.hsmId };
    this.#records.set(record.deviceId, record); // the address is taken from here on
    this.#provisioning.add(record.deviceId);
    this.#persist();
    try {
      const node = await spawnNode({ ...this.#spawnOptions(record), port, mode: request.mode ?? 'NON_FIPS' });
      Object.assign(record, { serial: node.serial, port: node.port, managementPort: node.managementPort, pid: node.pid });
      this.#children.set(record.deviceId, node.process);
      this.#persist();
      const device = deviceOf(record);
      await verifyDevice(this.management(device), device, { blank: true, mode: request.mode ?? 'NON_FIPS', journal: this.#journal() });
      record.state = 'ready';
      this.#persist();
      this.#watchChild(record.deviceId, node.process);
      return device;
    } catch (e) {
      const kept = this.#keepLog(record, e);
      await this.#discard(record);
      throw kept;
    } finally {
      this.#provisioning.delete(record.deviceId);
    }
  }

  /** A start failure's log would go with the data directory: it is moved to
   * `<dir>/failed-starts/<deviceId>.log` first, and the error names it there. */
  #keepLog(record: LocalRecord, e: unknown): unknown {
    if (!isCofferError(e, 'COFFER_FLEET_DEVICE_START')) return e;
    const kept = join(this.#dir, FAILED_STARTS_DIR, `${record.deviceId}.log`);
    try {
      mkdirSync(dirname(kept), { recursive: true, mode: 0o700 });
      renameSync(join(this.#dataDir(record.deviceId), NODE_LOG_FILE), kept);
    } catch {
      return e; // no log to keep
    }
    return new CofferError('COFFER_FLEET_DEVICE_START', { ...e.detail, log: kept }, { cause: e });
  }

  async reattach(device: FleetDevice): Promise<FleetDevice> {
    this.#open();
    this.#reload();
    const record = this.#records.get(device.deviceId);
    if (record?.state !== 'ready') return fail('COFFER_FLEET_DEVICE_LOST', { reason: 'unknown-device' });
    if (record.serial !== device.serial) return fail('COFFER_FLEET_DEVICE_LOST', { reason: 'serial-mismatch' });
    const child = this.#children.get(record.deviceId);
    const running = child === undefined ? holdsData(record.pid, this.#dataDir(record.deviceId)) : isRunning({ process: child });
    if (running) {
      try {
        // A node left running in another journal mode (a region started again with another
        // --journal) fails this and is restarted in the fleet's mode.
        await verifyDevice(this.management(deviceOf(record)), deviceOf(record), { blank: false, journal: this.#journal() });
        if (child === undefined) this.#watchPid(record);
        return deviceOf(record);
      } catch (e) {
        if (!isCofferError(e)) throw e;
        await this.#stop(record); // ours by its data directory, but not answering as itself
      }
    }
    return this.#restart(record);
  }

  management(device: FleetDevice): ManagementClient {
    return cachedClient(this.#clients, this.#options, device);
  }

  async release(device: FleetDevice): Promise<void> {
    this.#open();
    this.#reload();
    const record = this.#records.get(device.deviceId);
    if (record === undefined) return; // released already
    this.#stopping.add(record.deviceId);
    try {
      await this.management(deviceOf(record)).zeroise();
    } catch (e) {
      // Unreachable or refusing: removing its data directory below (the device secret with it)
      // erases the device all the same.
      if (!isCofferError(e)) throw e;
    }
    await this.#discard(record);
  }

  onDeviceExit(listener: (exit: DeviceExit) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(options: { readonly stopDevices?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#watches.values()) clearInterval(t);
    this.#watches.clear();
    for (const c of this.#clients.values()) c.client.close();
    this.#clients.clear();
    if (options.stopDevices === true) {
      await Promise.all([...this.#records.values()].map((r) => this.#stop(r)));
    }
    for (const child of this.#children.values()) {
      child.stdout?.destroy(); // the device runs on without this service; nothing more is read
      child.unref();
    }
    this.#children.clear();
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────

  /** How this fleet's devices order their journal (docs/fleet.md "Journal mode"). */
  #journal(): 'relayed' | 'solo' {
    return this.#options.journal ?? 'solo';
  }

  #open(): void {
    if (this.#closed) fail('COFFER_FLEET_EXHAUSTED', { reason: 'closed' });
  }

  #file(): string {
    return join(this.#dir, LOCAL_FLEET_FILE);
  }

  #dataDir(deviceId: string): string {
    return join(this.#dir, DEVICES_DIR, deviceId);
  }

  /**
   * Several service processes may share one fleet directory (docs/control-plane.md "Running
   * `coffer service`"); only the holder of the orchestrator lease changes the fleet, but one that
   * takes over must know the devices its predecessor made, and must not write them out of
   * fleet.json. So the file is read again before every change: a device it lists that this process
   * does not know is adopted, one it no longer lists was released elsewhere and is forgotten. Within
   * one process this changes nothing: every change is persisted before the next await. Returns the
   * devices `starting` that no provision of this process is making (another process's, under way
   * or cut short).
   */
  #reload(): LocalRecord[] {
    const listed = new Set<string>();
    for (const r of readFleetFile(this.#file(), LOCAL_FLEET_FORMAT, LOCAL_FLEET_VERSION, decodeRecord)) {
      listed.add(r.deviceId);
      const mine = this.#records.get(r.deviceId);
      if (mine === undefined) this.#records.set(r.deviceId, r); // its address is taken from here on
      else Object.assign(mine, r); // what another process wrote since (a restart, a provision finished)
    }
    for (const id of [...this.#records.keys()]) {
      if (listed.has(id) || this.#provisioning.has(id)) continue; // one being started here stays
      this.#records.delete(id);
      this.#clients.get(id)?.client.close();
      this.#clients.delete(id);
    }
    return [...this.#records.values()].filter((r) => r.state === 'starting' && !this.#provisioning.has(r.deviceId));
  }

  /** A device written down as `starting` that no provision of this process will finish: its
   * process (if it still serves the data directory) is killed and its data removed. */
  async #removeHalfStarted(r: LocalRecord): Promise<void> {
    const dataDir = this.#dataDir(r.deviceId);
    // pid 0: written down before its process said it was up; it is found by its command line.
    for (const pid of r.pid !== 0 ? [r.pid] : pidsHolding(dataDir)) if (holdsData(pid, dataDir)) await killPid(pid, dataDir, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    this.#records.delete(r.deviceId);
  }

  #persist(): void {
    writeFleetFile(this.#file(), LOCAL_FLEET_FORMAT, LOCAL_FLEET_VERSION, [...this.#records.values()]);
  }

  #spawnOptions(record: LocalRecord): Parameters<typeof spawnNode>[0] {
    return { mainJs: this.#options.mainJs, dataDir: this.#dataDir(record.deviceId), authoritiesDir: this.#options.authoritiesDir, host: record.host, detached: true, journal: this.#journal(),
      ...(this.#options.nodeLogLevel === undefined ? {} : { logLevel: this.#options.nodeLogLevel }) };
  }

  #allocate(eniIp: string | undefined): string {
    return allocateLoopback(eniIp, new Set([...this.#records.values()].map((r) => r.host)));
  }

  /** Restarts a device from its data directory on its address and port; same serial or lost. */
  async #restart(record: LocalRecord): Promise<FleetDevice> {
    if (!existsSync(join(this.#dataDir(record.deviceId), 'store.sqlite'))) return fail('COFFER_FLEET_DEVICE_LOST', { reason: 'data-gone' });
    let node;
    try {
      node = await spawnNode({ ...this.#spawnOptions(record), port: record.port });
    } catch (e) {
      if (!isCofferError(e, 'COFFER_FLEET_DEVICE_START')) throw e;
      throw new CofferError('COFFER_FLEET_DEVICE_LOST', { reason: 'restart-failed', log: String(e.detail['log']) }, { cause: e });
    }
    if (node.serial !== record.serial) {
      await stopNode(node, 'SIGKILL');
      return fail('COFFER_FLEET_DEVICE_LOST', { reason: 'serial-mismatch' });
    }
    Object.assign(record, { pid: node.pid, managementPort: node.managementPort });
    this.#children.set(record.deviceId, node.process);
    this.#persist();
    const device = deviceOf(record);
    try {
      await verifyDevice(this.management(device), device, { blank: false, journal: this.#journal() });
    } catch (e) {
      await this.#stop(record); // restarted, but not answering as itself: not handed back
      throw e;
    }
    this.#watchChild(record.deviceId, node.process);
    return device;
  }

  /** Stops the device's process (asked for: not reported), however it was found. */
  async #stop(record: LocalRecord): Promise<void> {
    this.#stopping.add(record.deviceId);
    const watch = this.#watches.get(record.deviceId);
    if (watch !== undefined) clearInterval(watch);
    this.#watches.delete(record.deviceId);
    const child = this.#children.get(record.deviceId);
    if (child !== undefined) await stopNode({ process: child }, 'SIGTERM');
    else if (record.pid !== 0 && holdsData(record.pid, this.#dataDir(record.deviceId))) await killPid(record.pid, this.#dataDir(record.deviceId), 'SIGTERM');
    this.#children.delete(record.deviceId);
  }

  /** Stops the device, removes its data and forgets it (its address is free again). */
  async #discard(record: LocalRecord): Promise<void> {
    await this.#stop(record);
    this.#clients.get(record.deviceId)?.client.close();
    this.#clients.delete(record.deviceId);
    rmSync(this.#dataDir(record.deviceId), { recursive: true, force: true });
    this.#records.delete(record.deviceId);
    this.#persist();
    this.#stopping.delete(record.deviceId);
  }

  #watchChild(deviceId: string, child: ChildProcess): void {
    this.#stopping.delete(deviceId);
    child.once('exit', (code, signal) => {
      if (this.#children.get(deviceId) === child) this.#children.delete(deviceId);
      this.#report(deviceId, code, signal);
    });
  }

  /** A process this service did not start: polled, since only a parent hears of an exit. */
  #watchPid(record: LocalRecord): void {
    this.#stopping.delete(record.deviceId);
    const previous = this.#watches.get(record.deviceId);
    if (previous !== undefined) clearInterval(previous);
    const dataDir = this.#dataDir(record.deviceId);
    const pid = record.pid;
    const timer = setInterval(() => {
      if (holdsData(pid, dataDir)) return;
      clearInterval(timer);
      if (this.#watches.get(record.deviceId) === timer) this.#watches.delete(record.deviceId);
      this.#report(record.deviceId, null, null);
    }, this.#options.pidWatchIntervalMs ?? PID_WATCH_INTERVAL_MS);
    timer.unref();
    this.#watches.set(record.deviceId, timer);
  }

  #report(deviceId: string, code: number | null, signal: string | null): void {
    const record = this.#records.get(deviceId);
    if (this.#closed || this.#stopping.has(deviceId) || record === undefined) return;
    const exit: DeviceExit = { device: deviceOf(record), reason: 'exited', code, signal };
    for (const l of this.#listeners) l(exit);
  }
}

/** The address asked for, when it is a fleet address (127.0.0.N, LOOPBACK_FIRST ≤ N ≤
 * LOOPBACK_LAST, written canonically) and not `taken`; without one, the lowest free address. */
export function allocateLoopback(eniIp: string | undefined, taken: ReadonlySet<string>): string {
  if (eniIp !== undefined) {
    const n = Number(LOOPBACK.exec(eniIp)?.[1] ?? NaN);
    if (!(n >= LOOPBACK_FIRST && n <= LOOPBACK_LAST) || eniIp !== `127.0.0.${n}`) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'not-a-fleet-address' });
    if (taken.has(eniIp)) fail('COFFER_FLEET_ADDRESS_UNAVAILABLE', { reason: 'in-use' });
    return eniIp;
  }
  for (let n = LOOPBACK_FIRST; n <= LOOPBACK_LAST; n++) if (!taken.has(`127.0.0.${n}`)) return `127.0.0.${n}`;
  return fail('COFFER_FLEET_EXHAUSTED', { reason: 'no-address-left' });
}

function deviceOf(r: LocalRecord): FleetDevice {
  return { deviceId: r.deviceId, serial: r.serial, host: r.host, port: r.port, managementHost: r.host, managementPort: r.managementPort };
}

function newDeviceId(): string {
  let id = 'local-';
  for (let i = 0; i < DEVICE_ID_LENGTH; i++) id += DEVICE_ID_CHARS[randomInt(DEVICE_ID_CHARS.length)];
  return id;
}

function decodeRecord(value: unknown): LocalRecord {
  const f = new RecordFields(value, LOCAL_FLEET_FORMAT);
  const state = f.string('state', /^(starting|ready)$/) as LocalRecord['state'];
  return {
    deviceId: f.string('deviceId', DEVICE_ID), state, serial: f.string('serial'), host: f.string('host', LOOPBACK),
    port: f.integer('port', 0, TCP_PORT_MAX), managementPort: f.integer('managementPort', 0, TCP_PORT_MAX), pid: f.integer('pid', 0, PID_MAX),
    clusterId: f.string('clusterId'), hsmId: f.string('hsmId'),
  };
}

/**
 * True when `pid` is alive and is a node serving `dataDir`: its command line (Linux /proc) names
 * the directory. A pid the kernel has handed to another program since, or a zombie, does not.
 * Where /proc cannot be read, a live pid counts, and the management identity decides.
 */
export function holdsData(pid: number, dataDir: string): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as { code?: unknown }).code !== 'EPERM') return false;
  }
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch (e) {
    return (e as { code?: unknown }).code !== 'ENOENT' || !existsSync('/proc/self');
  }
  return cmdline.split('\0').includes(dataDir);
}

/** The processes serving `dataDir`, by their command lines (Linux /proc; elsewhere none are found). */
function pidsHolding(dataDir: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries.filter((e) => /^\d+$/.test(e)).map(Number).filter((pid) => pid !== process.pid && holdsData(pid, dataDir));
}

/** Stops a process that is not our child — `signal`, then SIGKILL after NODE_STOP_TIMEOUT_MS — and
 * waits until it no longer holds `dataDir`. */
async function killPid(pid: number, dataDir: string, signal: NodeJS.Signals): Promise<void> {
  const send = (s: NodeJS.Signals): void => {
    try {
      process.kill(pid, s);
    } catch {
      // gone already
    }
  };
  send(signal);
  let deadline = Date.now() + NODE_STOP_TIMEOUT_MS;
  let escalated = signal === 'SIGKILL';
  while (holdsData(pid, dataDir)) {
    if (Date.now() > deadline) {
      if (escalated) return fail('COFFER_FLEET_DEVICE_LOST', { reason: 'process-will-not-stop', pid });
      send('SIGKILL');
      escalated = true;
      deadline = Date.now() + NODE_STOP_TIMEOUT_MS;
    }
    await new Promise((r) => setTimeout(r, PID_GONE_POLL_MS));
  }
}
