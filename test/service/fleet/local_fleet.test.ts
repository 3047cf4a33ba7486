// The local fleet (src/service/fleet/local_fleet.ts): the conformance suite on real `coffer hsm
// serve` processes, then what only this adapter does — its loopback addresses, its fleet file and
// the clean-up of a device a crash left half-started.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isCofferError } from '../../../src/errors.js';
import type { FleetDevice } from '../../../src/service/fleet/fleet_port.js';
import { DEVICES_DIR, FAILED_STARTS_DIR, LOCAL_FLEET_FILE, LocalFleet, holdsData } from '../../../src/service/fleet/local_fleet.js';
import { fleetConformance } from './fleet_conformance.js';
import { MAIN_JS, fleetEnvironment } from './fleet_support.js';

const env = await fleetEnvironment('local-fleet');
const dir = join(env.dir, 'fleet');

function open(fleetDir: string): Promise<LocalFleet> {
  return LocalFleet.open({ dir: fleetDir, authoritiesDir: env.authoritiesDir, mainJs: MAIN_JS, ...env.credentials });
}

/** What fleet.json says of a device (read independently of any fleet object). */
function recordOf(device: FleetDevice): { pid: number } | undefined {
  const doc = JSON.parse(readFileSync(join(dir, LOCAL_FLEET_FILE), 'utf8')) as { devices: Array<{ deviceId: string; pid: number }> };
  return doc.devices.find((d) => d.deviceId === device.deviceId);
}

function pidOf(device: FleetDevice): number {
  return recordOf(device)?.pid ?? assert.fail(`no record of ${device.deviceId}`);
}

fleetConformance({
  name: 'local', env, dir,
  open,
  address: (n) => `127.0.0.${20 + n}`,
  kill: (device) => {
    process.kill(pidOf(device), 'SIGKILL');
    return Promise.resolve();
  },
  released: (device) => {
    assert.equal(recordOf(device), undefined, 'forgotten by the fleet file');
    assert.equal(existsSync(join(dir, DEVICES_DIR, device.deviceId)), false, 'its data directory (device secret included) is gone');
    return Promise.resolve();
  },
  processOf: (device) => String(pidOf(device)),
});

test('local: only loopback addresses 127.0.0.2–254 are handed out, and a bad port is refused, before any process starts', async () => {
  const fleet = await open(join(env.dir, 'addresses'));
  try {
    for (const eniIp of ['127.0.0.1', '127.0.0.255', '127.0.0.0', '10.0.0.5', '127.0.0.010', '127.0.0.2 ', 'localhost']) {
      await assert.rejects(fleet.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', eniIp, dataPlanePort: 0 }), (e) => {
        assert.ok(isCofferError(e, 'COFFER_FLEET_ADDRESS_UNAVAILABLE'), String(e));
        assert.equal(e.detail['reason'], 'not-a-fleet-address');
        return true;
      });
    }
    for (const dataPlanePort of [-1, 65536, 1.5]) {
      await assert.rejects(fleet.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort }), (e) => isCofferError(e, 'COFFER_FLEET_ADDRESS_UNAVAILABLE'));
    }
    assert.deepEqual(fleet.devices(), []);
  } finally {
    await fleet.close();
  }
});

test('local: without an address the lowest free one is chosen; fleet.json holds no key', async () => {
  const fleetDir = join(env.dir, 'lowest');
  const fleet = await open(fleetDir);
  try {
    const a = await fleet.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: 0 });
    assert.equal(a.host, '127.0.0.2');
    assert.ok(a.port > 0, 'port 0 asks for any port; the device says which');
    const text = readFileSync(join(fleetDir, LOCAL_FLEET_FILE), 'utf8');
    assert.ok(!text.includes('PRIVATE KEY') && !text.includes(env.credentials.keyPem.slice(40, 80)));
    assert.equal((JSON.parse(text) as { devices: unknown[] }).devices.length, 1);
    await fleet.release(a);
  } finally {
    await fleet.close({ stopDevices: true });
  }
});

test('local: a device a crash left half-started stays while fleets open (another process may be starting it) and goes at the next provision; a damaged fleet file is refused', async () => {
  const fleetDir = join(env.dir, 'crashed');
  const dataDir = join(fleetDir, DEVICES_DIR, 'local-abcdefghijkl');
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(join(dataDir, 'store.sqlite'), 'left over');
  const starting = { deviceId: 'local-abcdefghijkl', state: 'starting', serial: '', host: '127.0.0.9', port: 0, managementPort: 0, pid: 0, clusterId: 'c', hsmId: 'h' };
  writeFileSync(join(fleetDir, LOCAL_FLEET_FILE), JSON.stringify({ format: 'coffer-local-fleet', version: 1, devices: [starting] }));
  const listed = (): Array<{ deviceId: string; host: string }> => (JSON.parse(readFileSync(join(fleetDir, LOCAL_FLEET_FILE), 'utf8')) as { devices: Array<{ deviceId: string; host: string }> }).devices;
  const bystander = await open(fleetDir);
  await bystander.close();
  assert.equal(existsSync(dataDir), true, 'opening a fleet removes nothing');
  assert.deepEqual(listed().map((d) => d.deviceId), [starting.deviceId]);

  const fleet = await open(fleetDir);
  try {
    // The provision asks for the half-started device's address: it is free once that device is gone.
    const device = await fleet.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', eniIp: starting.host, dataPlanePort: 0 });
    assert.equal(device.host, starting.host);
    assert.equal(existsSync(dataDir), false, 'its data went');
    assert.deepEqual(listed().map((d) => d.deviceId), [device.deviceId]);
    await fleet.release(device);
  } finally {
    await fleet.close({ stopDevices: true });
  }

  writeFileSync(join(fleetDir, LOCAL_FLEET_FILE), JSON.stringify({ format: 'coffer-local-fleet', version: 2, devices: [] }));
  await assert.rejects(open(fleetDir), (e) => isCofferError(e, 'COFFER_FORMAT_UNKNOWN_VERSION'));
  writeFileSync(join(fleetDir, LOCAL_FLEET_FILE), JSON.stringify({ format: 'coffer-local-fleet', version: 1, devices: [{ ...starting, deviceId: '../x' }] }));
  await assert.rejects(open(fleetDir), (e) => isCofferError(e, 'COFFER_FORMAT_BAD_MAGIC'));
});

test('local: holdsData tells a live node of a data directory from a dead pid or another program', () => {
  assert.equal(holdsData(process.pid, '/nonexistent/data'), false, 'alive, but not serving that directory');
  assert.equal(holdsData(0, dir), false);
  assert.equal(holdsData(2 ** 22 + 1, dir), false);
});

test('local: a device that does not start is a typed error naming its log, and leaves no record, data or address behind', async () => {
  const fleetDir = join(env.dir, 'no-start');
  const fleet = await LocalFleet.open({ dir: fleetDir, authoritiesDir: join(env.dir, 'no-such-authorities'), mainJs: MAIN_JS, ...env.credentials });
  try {
    await assert.rejects(fleet.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', eniIp: '127.0.0.40', dataPlanePort: 0 }), (e) => {
      assert.ok(isCofferError(e, 'COFFER_FLEET_DEVICE_START'), String(e));
      const log = String(e.detail['log']);
      assert.equal(dirname(log), join(fleetDir, FAILED_STARTS_DIR), 'kept outside the removed data directory');
      assert.ok(readFileSync(log, 'utf8').length > 0, 'the node said why');
      return true;
    });
    assert.deepEqual(fleet.devices(), []);
    assert.deepEqual(readdirSync(join(fleetDir, DEVICES_DIR)), [], 'its data directory is removed');
    assert.deepEqual((JSON.parse(readFileSync(join(fleetDir, LOCAL_FLEET_FILE), 'utf8')) as { devices: unknown[] }).devices, [], 'its address is free');
  } finally {
    await fleet.close();
  }
});
