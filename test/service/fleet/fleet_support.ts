// Shared by the fleet tests: development authorities saved where node processes can load them, a
// management client credential under their operator root, a customer CA to initialise clusters
// with, free ports on loopback addresses, and waiting for a fleet's device-exit events.

import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createDevelopmentAuthorities, createDevelopmentCustomerCa, issueManagementClientCertificate, saveDevelopmentAuthorities, type DevelopmentAuthorities,
  type DevelopmentCustomerCa,
} from '../../../src/factory/development.js';
import { pemOf } from '../../../src/formats/x509.js';
import { ManagementClient } from '../../../src/management/client.js';
import type { DeviceExit, Fleet, FleetDevice } from '../../../src/service/fleet/fleet_port.js';
import type { FleetCredentials } from '../../../src/service/fleet/verify.js';

/** The coffer CLI the node processes run. */
export const MAIN_JS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src/cli/main.js');
/** How long a test waits for an event (a process start, an exit) before it fails: generous, since
 * the machine may be busy; never a measured duration. */
export const EVENT_WAIT_MS = 120_000;

export interface FleetEnvironment {
  readonly dir: string;
  readonly authorities: DevelopmentAuthorities;
  readonly authoritiesDir: string;
  readonly credentials: FleetCredentials;
  readonly customerCa: DevelopmentCustomerCa;
}

export async function fleetEnvironment(prefix: string): Promise<FleetEnvironment> {
  const dir = mkdtempSync(join(tmpdir(), `coffer-${prefix}-`));
  const authorities = await createDevelopmentAuthorities();
  const authoritiesDir = join(dir, 'authorities');
  saveDevelopmentAuthorities(authorities, authoritiesDir);
  const client = await issueManagementClientCertificate(authorities.operator, 'fleet test');
  const credentials: FleetCredentials = {
    ...client, manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate),
  };
  return { dir, authorities, authoritiesDir, credentials, customerCa: await createDevelopmentCustomerCa() };
}

/** A management client of the test's own (not the fleet's), pinned to the device's serial. */
export function independentClient(env: FleetEnvironment, device: FleetDevice): ManagementClient {
  return new ManagementClient({ host: device.managementHost, port: device.managementPort, ...env.credentials, expectedSerial: device.serial });
}

/** A TCP port free on every one of `hosts` right now. */
export async function freePort(hosts: readonly string[]): Promise<number> {
  for (;;) {
    const port = await listenOnce(hosts[0] ?? '127.0.0.1', 0);
    let free = true;
    for (const h of hosts.slice(1)) free = free && (await listenOnce(h, port).then(() => true, () => false));
    if (free) return port;
  }
}

function listenOnce(host: string, port: number): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(port, host, () => {
      const got = (s.address() as { port: number }).port;
      s.close(() => ok(got));
    });
  });
}

/** The next exit `fleet` reports for `deviceId`, within EVENT_WAIT_MS. Subscribe before the kill. */
export function nextExit(fleet: Fleet, deviceId: string): Promise<DeviceExit> {
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => {
      off();
      fail(new Error(`no exit reported for ${deviceId}`));
    }, EVENT_WAIT_MS);
    const off = fleet.onDeviceExit((exit) => {
      if (exit.device.deviceId !== deviceId) return;
      clearTimeout(timer);
      off();
      ok(exit);
    });
  });
}
