// The remote fleet's registry as API operations (docs/fleet.md "Registering nodes"): RegisterNode,
// ListNodes and DeregisterNode under `X-Amz-Target: CofferFleetService.<Operation>`
// (src/service/api/coffer_operations.ts), for `coffer fleet register|list|deregister`.
//
// Any service process of a region may answer them: the registry is one document of the shared
// metadata store, changed by compare-and-set (src/service/fleet/remote_registry.ts), so a
// registration here is serialised with the orchestrating process's provisions and releases. The
// process that answers RegisterNode authenticates the node itself (attestation against the roots,
// blank) before anything is recorded; a refusal is the fleet's CofferError, answered as such.
//
// Requests are JSON objects with exactly the members below, each checked here (there is no service
// model for them); a bad one is ValidationException naming the member, never repeating its value.
//
//   RegisterNode    { ManagementHost, ManagementPort, DataPlaneHost?, DataPlanePort? } → { Node }
//   ListNodes       {}                                                              → { Nodes }
//   DeregisterNode  { DeviceId } | { ManagementHost, ManagementPort }                → { Node }
//
// Node: { DeviceId, Serial, State, DataPlaneHost, DataPlanePort, ManagementHost, ManagementPort, HsmId? }.

import type { Logger } from 'pino';
import { protocolFail } from './api/api_errors.js';
import { requestMembers as members, type FleetOperations, type Members } from './api/coffer_operations.js';
import type { RegisteredNode, RemoteFleet, RemoteNodeSelector } from './fleet/remote_fleet.js';
import { REMOTE_DEVICE_ID } from './fleet/remote_registry.js';

const TCP_PORT_MAX = 65535;
/** Host names and addresses; the fleet checks them again (remote_registry.ts REMOTE_HOST). */
const HOST_CHARS_MAX = 253;


function host(m: Members, name: string): string {
  const v = m[name];
  if (typeof v !== 'string' || v.length === 0 || v.length > HOST_CHARS_MAX) protocolFail('ValidationException', `${name} must be a host name or address of 1-${HOST_CHARS_MAX} characters`);
  return v;
}

function port(m: Members, name: string): number {
  const v = m[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > TCP_PORT_MAX) protocolFail('ValidationException', `${name} must be a TCP port (1-${TCP_PORT_MAX})`);
  return v;
}

function nodeShape(n: RegisteredNode): Record<string, unknown> {
  return {
    DeviceId: n.deviceId, Serial: n.serial, State: n.state, Mode: n.mode, DataPlaneHost: n.host, DataPlanePort: n.port,
    ManagementHost: n.managementHost, ManagementPort: n.managementPort, ...(n.hsmId === undefined ? {} : { HsmId: n.hsmId }),
  };
}

/** The fleet operations of a service on `fleet`; registrations and deregistrations are logged. */
export function fleetOperations(fleet: RemoteFleet, log: Logger): FleetOperations {
  return {
    RegisterNode: async (input, caller) => {
      const m = members(input, ['ManagementHost', 'ManagementPort', 'DataPlaneHost', 'DataPlanePort']);
      const node = await fleet.register({
        managementHost: host(m, 'ManagementHost'), managementPort: port(m, 'ManagementPort'),
        ...(m['DataPlaneHost'] === undefined ? {} : { dataPlaneHost: host(m, 'DataPlaneHost') }),
        ...(m['DataPlanePort'] === undefined ? {} : { dataPlanePort: port(m, 'DataPlanePort') }),
      });
      log.info({ event: 'fleet.node.registered', requestId: caller.requestId, account: caller.accountId, ...node }, 'remote node registered');
      return { Node: nodeShape(node) };
    },
    ListNodes: async (input) => {
      members(input, []);
      return { Nodes: (await fleet.registered()).map(nodeShape) };
    },
    DeregisterNode: async (input, caller) => {
      const m = members(input, ['DeviceId', 'ManagementHost', 'ManagementPort']);
      const byId = m['DeviceId'] !== undefined;
      if (byId === (m['ManagementHost'] !== undefined || m['ManagementPort'] !== undefined)) {
        protocolFail('ValidationException', 'Name the node by DeviceId, or by ManagementHost and ManagementPort');
      }
      let selector: RemoteNodeSelector;
      if (byId) {
        const id = m['DeviceId'];
        if (typeof id !== 'string' || !REMOTE_DEVICE_ID.test(id)) protocolFail('ValidationException', 'DeviceId must be remote- and 12 of [a-z2-7]');
        selector = { deviceId: id };
      } else {
        selector = { managementHost: host(m, 'ManagementHost'), managementPort: port(m, 'ManagementPort') };
      }
      const node = await fleet.deregister(selector);
      log.info({ event: 'fleet.node.deregistered', requestId: caller.requestId, account: caller.accountId, ...node }, 'remote node deregistered');
      return { Node: nodeShape(node) };
    },
  };
}
