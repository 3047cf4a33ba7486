// The in-process fleet (in_process_fleet.ts) passes the fleet conformance suite: nodes served in
// this process on real sockets, each over its own sealed store.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FleetDevice } from '../../../src/service/fleet/fleet_port.js';
import { fleetConformance } from './fleet_conformance.js';
import { fleetEnvironment } from './fleet_support.js';
import { InProcessFleet, killInProcess, servingOf } from './in_process_fleet.js';

const env = await fleetEnvironment('in-process-fleet');
const dir = join(env.dir, 'fleet');
const dataDir = (device: FleetDevice): string => join(dir, 'devices', device.deviceId);

fleetConformance({
  name: 'in-process', env, dir,
  open: (fleetDir) => InProcessFleet.open({ dir: fleetDir, authoritiesDir: env.authoritiesDir, ...env.credentials }),
  address: (n) => `127.0.0.${60 + n}`,
  kill: (device) => killInProcess(dataDir(device)),
  released: (device) => {
    assert.equal(servingOf(dataDir(device)), undefined, 'no longer served');
    assert.equal(existsSync(dataDir(device)), false, 'its data directory is gone');
    return Promise.resolve();
  },
  processOf: (device) => servingOf(dataDir(device)) ?? assert.fail('not served'),
});
