// How a fleet checks a device before it hands it out or takes it back (docs/fleet.md "What a
// device is"): over its management interface only, with a client pinned to the serial the fleet
// expects. The identity must verify against the manufacturer and operator roots with the device
// key's attestation of this very connection (src/management/client.ts), the health must name the
// same serial as COMMISSIONED and the data-plane port the fleet records, a device to be handed
// out must be blank: no cluster, no users, and it must order its cluster journal the way the service
// does (relayed or solo: docs/fleet.md "Journal mode").

import { CofferError, fail, isCofferError } from '../../errors.js';
import { ManagementClient, type NodeHealth } from '../../management/client.js';
import type { FleetDevice } from './fleet_port.js';

/** What a fleet reaches devices with: a management client certificate and the roots it trusts. */
export interface FleetCredentials {
  /** Client certificate and key, PEM: issued under the operator root, EKU clientAuth. */
  readonly certificatePem: string;
  readonly keyPem: string;
  /** The roots every device's certificates must chain to. */
  readonly manufacturerRootPem: string;
  readonly operatorRootPem: string;
}

/** The device's identity, as its attestation proves it; COFFER_FLEET_UNTRUSTED when it does not. */
export async function attestedSerial(client: ManagementClient): Promise<string> {
  try {
    return (await client.identity()).serial;
  } catch (e) {
    if (!isCofferError(e, 'COFFER_NODE_UNTRUSTED')) throw e;
    throw new CofferError('COFFER_FLEET_UNTRUSTED', e.detail, { cause: e });
  }
}

/** True when the node holds no cluster and no users: what a fleet hands out. */
export function isBlank(health: NodeHealth): boolean {
  return health.cluster === 'UNINITIALISED' && !health.usersInitialised && health.tokenObjects === 0;
}

/**
 * COFFER_FLEET_JOURNAL_MODE_MISMATCH unless the node orders its journal as `expected` says. A node
 * too old to report its mode (null) has no relayed journal: it passes only where the service is solo.
 */
export function checkJournalMode(health: NodeHealth, expected: 'relayed' | 'solo' | undefined): void {
  if (expected === undefined) return;
  const node = health.journalMode ?? 'solo';
  if (node !== expected) fail('COFFER_FLEET_JOURNAL_MODE_MISMATCH', { node, service: expected });
}

/** Verifies `device` (see the header) and answers its health. */
export async function verifyDevice(
  client: ManagementClient, device: FleetDevice,
  options: { readonly blank: boolean; readonly mode?: 'FIPS' | 'NON_FIPS'; readonly journal?: 'relayed' | 'solo' },
): Promise<NodeHealth> {
  if ((await attestedSerial(client)) !== device.serial) fail('COFFER_FLEET_UNTRUSTED', { reason: 'unexpected-serial' });
  const health = await client.health();
  if (health.provisioning !== 'COMMISSIONED' || health.serial !== device.serial) fail('COFFER_FLEET_UNTRUSTED', { reason: 'not-commissioned' });
  if (health.dataPlanePort !== null && health.dataPlanePort !== device.port) fail('COFFER_FLEET_UNTRUSTED', { reason: 'data-plane-port' });
  if (options.blank && !isBlank(health)) fail('COFFER_FLEET_NODE_NOT_BLANK', { cluster: health.cluster });
  if (options.mode !== undefined && health.mode !== options.mode) fail('COFFER_FLEET_MODE_MISMATCH', { mode: String(health.mode) });
  checkJournalMode(health, options.journal);
  return health;
}

/** A fleet's management clients, one per device, each for the endpoint it was made for. */
export type ClientCache = Map<string, { readonly client: ManagementClient; readonly endpoint: string }>;

/** The cached client of `device`, or a new one (pinned to its serial) when its endpoint changed. */
export function cachedClient(cache: ClientCache, credentials: FleetCredentials, device: FleetDevice): ManagementClient {
  const endpoint = `${device.managementHost}:${device.managementPort}/${device.serial}`;
  const cached = cache.get(device.deviceId);
  if (cached?.endpoint === endpoint) return cached.client;
  cached?.client.close();
  const client = new ManagementClient({
    host: device.managementHost, port: device.managementPort, certificatePem: credentials.certificatePem, keyPem: credentials.keyPem,
    manufacturerRootPem: credentials.manufacturerRootPem, operatorRootPem: credentials.operatorRootPem, expectedSerial: device.serial,
  });
  cache.set(device.deviceId, { client, endpoint });
  return client;
}
