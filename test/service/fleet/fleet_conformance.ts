// The one conformance suite of the fleet port (src/service/fleet/fleet_port.ts, docs/fleet.md):
// every adapter — local processes, registered remote nodes, in-process nodes — passes it unchanged.
// A harness says how its adapter is opened, which requests it can honour, how a device's process is
// killed (as SIGKILL would), what an operator does after a loss (a remote node is restarted by its
// operator, the fleet cannot), and how a released device looks from outside.
//
// Checked through independent management clients (not the fleet's own) wherever a fleet could
// otherwise vouch for itself; every wait is on an event with a generous bound, never a duration.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import type { DeviceExit, Fleet, FleetDevice, ProvisionRequest } from '../../../src/service/fleet/fleet_port.js';
import { freePort, independentClient, nextExit, type FleetEnvironment } from './fleet_support.js';

export interface FleetHarness {
  readonly name: string;
  readonly env: FleetEnvironment;
  /** The fleet directory every instance of the suite opens. */
  readonly dir: string;
  /** A fleet instance on `dir`; called again on the same directory, it is a service restart. */
  open(dir: string): Promise<Fleet>;
  /** The `n`-th address a test may ask for (distinct for distinct n), and whether the adapter
   * lets a request name it (every adapter does; a remote harness registers nodes there). */
  address(n: number): string;
  /** Before a test asks for `addresses` on `port` (remote: the operator starts and registers nodes there). */
  prepare?(fleet: Fleet, addresses: readonly string[], port: number): Promise<void>;
  /** Kills the process serving `device` with no chance to say goodbye. */
  kill(device: FleetDevice): Promise<void>;
  /** What the operator does after a loss before reattach (remote: restarts the node on its data). */
  recover?(device: FleetDevice): Promise<void>;
  /** Checks from outside that a released device is gone as this adapter releases (local: no
   * process, no data; remote: zeroised and free). */
  released(device: FleetDevice): Promise<void>;
  /** Names the process now serving `device` (a pid, an object's id): unchanged by a reattach that
   * found the device running, changed by a restart. */
  processOf(device: FleetDevice): string;
  /** Stops whatever the harness started itself. */
  cleanup?(): Promise<void>;
}

const CLUSTER = 'cluster-fleetconform2';

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(isCofferError(e, code), `expected ${code}, got ${String(e)}`);
    return true;
  });
}

function request(hsm: number, eniIp: string, dataPlanePort: number): ProvisionRequest {
  return { clusterId: CLUSTER, hsmId: `hsm-fleetconform${hsm}`, eniIp, dataPlanePort };
}

/** The data plane answers a TLS handshake at host:port. */
function dataPlaneAnswers(device: FleetDevice): Promise<void> {
  return new Promise((ok, fail) => {
    const socket = connect({ host: device.host, port: device.port, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, () => {
      assert.ok(socket.getPeerX509Certificate() !== undefined);
      socket.destroy();
      ok();
    });
    socket.once('error', fail);
  });
}

/** Initialises a cluster on `device` through the fleet's client; answers the device's state digest. */
async function initialise(h: FleetHarness, fleet: Fleet, device: FleetDevice): Promise<string> {
  const client = fleet.management(device);
  const csr = await client.clusterCsr(CLUSTER);
  await client.initialiseCluster({
    certificatePem: await h.env.customerCa.signClusterCsr(csr), trustAnchorPem: h.env.customerCa.certificatePem,
    preCoPassword: 'preco-password', applianceCredential: 'appliance-credential-0123456789',
  });
  const health = await client.health({ digest: true });
  assert.equal(health.cluster, 'INITIALISED');
  assert.ok(health.stateDigest !== null, "asked for, the digest is answered");
  return health.stateDigest;
}

export function fleetConformance(h: FleetHarness): void {
  const dir = h.dir;
  after(async () => {
    const fleet = await h.open(dir);
    await fleet.close({ stopDevices: true });
    await h.cleanup?.();
    rmSync(h.env.dir, { recursive: true, force: true });
  });

  test(`${h.name}: provision hands out a verified, blank, running device at the address and port asked for`, async () => {
    const fleet = await h.open(dir);
    const address = h.address(0);
    const port = await freePort([address]);
    await h.prepare?.(fleet, [address], port);
    const device = await fleet.provision(request(0, address, port));
    try {
      assert.deepEqual([device.host, device.port, device.managementHost], [address, port, address]);
      const own = independentClient(h.env, device);
      assert.equal((await own.identity()).serial, device.serial, 'the attested serial');
      const health = await own.health({ digest: true });
      own.close();
      assert.deepEqual(
        [health.provisioning, health.serial, health.cluster, health.usersInitialised, health.tokenObjects, health.dataPlanePort, health.restoring],
        ['COMMISSIONED', device.serial, 'UNINITIALISED', false, 0, port, false],
      );
      await dataPlaneAnswers(device);
      assert.equal((await fleet.management(device).health({ digest: true })).serial, device.serial, "the fleet's client, pinned to the serial");
      await rejectsWith(fleet.provision(request(1, address, port)), 'COFFER_FLEET_ADDRESS_UNAVAILABLE');
    } finally {
      await fleet.release(device);
      await fleet.close();
    }
    await h.released(device);
  });

  test(`${h.name}: two devices of a cluster: distinct serials and addresses, one port; backup of one restores into the other; release frees`, async () => {
    const fleet = await h.open(dir);
    const addresses = [h.address(1), h.address(2)];
    const port = await freePort(addresses);
    await h.prepare?.(fleet, addresses, port);
    const exits: DeviceExit[] = [];
    fleet.onDeviceExit((exit) => exits.push(exit));
    const a = await fleet.provision(request(1, h.address(1), port));
    const b = await fleet.provision(request(2, h.address(2), port));
    try {
      assert.notEqual(a.serial, b.serial);
      assert.notEqual(a.host, b.host);
      assert.notEqual(a.deviceId, b.deviceId);
      assert.deepEqual([a.port, b.port], [port, port]);
      const digest = await initialise(h, fleet, a);
      const file = join(h.env.dir, `${a.deviceId}.backup`);
      const { backupId } = await fleet.management(a).backupToFile(file);
      const summary = await fleet.management(b).restoreFromFile(file);
      rmSync(file);
      assert.equal(summary.backupId, backupId);
      const own = independentClient(h.env, b);
      const restored = await own.health({ digest: true });
      own.close();
      assert.deepEqual([restored.cluster, restored.clusterId, restored.stateDigest], ['INITIALISED', CLUSTER, digest]);
    } finally {
      await fleet.release(a);
      await fleet.release(b);
    }
    await h.released(a);
    await h.released(b);
    assert.deepEqual(exits, [], 'a release is no exit to report');
    await h.prepare?.(fleet, [a.host], port);
    const again = await fleet.provision(request(3, a.host, port)); // the address is free again
    try {
      assert.equal(again.host, a.host);
      const health = await fleet.management(again).health({ digest: true });
      assert.deepEqual([health.cluster, health.tokenObjects], ['UNINITIALISED', 0], 'handed out blank');
    } finally {
      await fleet.release(again);
      await fleet.close();
    }
  });

  test(`${h.name}: a new fleet instance on the same directory reattaches the running devices as they run`, async () => {
    const first = await h.open(dir);
    const address = h.address(3);
    const port = await freePort([address]);
    await h.prepare?.(first, [address], port);
    const device = await first.provision(request(4, address, port));
    const process = h.processOf(device);
    await first.close(); // the service stops; its devices run on
    const second = await h.open(dir);
    const exits: DeviceExit[] = [];
    second.onDeviceExit((exit) => exits.push(exit));
    try {
      const found = await second.reattach(device);
      assert.deepEqual([found.deviceId, found.serial, found.host, found.port], [device.deviceId, device.serial, device.host, device.port]);
      assert.equal(h.processOf(found), process, 'found running, not restarted');
      assert.equal((await second.management(found).health({ digest: true })).serial, device.serial);
      await second.release(found);
      assert.deepEqual(exits, [], 'a release is no exit to report');
    } finally {
      await second.close();
    }
    await h.released(device);
  });

  test(`${h.name}: a killed device is reported, and reattach restarts it from its data (same serial, address, port, state)`, async () => {
    const first = await h.open(dir);
    const address = h.address(4);
    const port = await freePort([address]);
    await h.prepare?.(first, [address], port);
    const device = await first.provision(request(5, address, port));
    const digest = await initialise(h, first, device);
    let exited = nextExit(first, device.deviceId);
    const before = h.processOf(device);
    await h.kill(device);
    const exit = await exited;
    assert.equal(exit.device.serial, device.serial);
    await h.recover?.(device);
    const restarted = await first.reattach(device);
    assert.deepEqual([restarted.serial, restarted.host, restarted.port], [device.serial, device.host, device.port]);
    assert.notEqual(h.processOf(restarted), before, 'a new process');
    const own = independentClient(h.env, restarted);
    const health = await own.health({ digest: true });
    own.close();
    assert.deepEqual([health.cluster, health.stateDigest], ['INITIALISED', digest], 'restarted from its own data');

    // After a service restart the device is not this instance's child: its death is reported too.
    await first.close();
    const second = await h.open(dir);
    try {
      const found = await second.reattach(restarted);
      exited = nextExit(second, device.deviceId);
      const running = h.processOf(found);
      await h.kill(found);
      await exited;
      await h.recover?.(found);
      const again = await second.reattach(found);
      assert.notEqual(h.processOf(again), running);
      assert.equal((await second.management(again).health({ digest: true })).stateDigest, digest);
      await second.release(again);
    } finally {
      await second.close();
    }
    await h.released(device);
  });
}
