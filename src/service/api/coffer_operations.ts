// Coffer's own operations on the API port, outside the CloudHSMv2 model (docs/fleet.md "Registering
// nodes"): the remote fleet's registry, for operators. They share the port, AWS JSON 1.1, SigV4
// (same signing name and region) and the access keys with the CloudHSMv2 API, under an
// X-Amz-Target prefix of their own, so nothing of the CloudHSMv2 service model changes: no
// CloudHSMv2 client sees them, and a BaldrApiService target that is not a model operation is
// refused as before. They are served only by a service that runs a remote fleet; elsewhere their
// targets are unknown operations like any other. Each needs its own action (`coffer:<Operation>`)
// in the access-keys file, or `*`.
//
// An operation gets the parsed JSON body and answers a JSON object. Its expected failures are
// CofferErrors, answered as `{"__type": code, "Message": message, "Detail": detail}` with the
// registry's HTTP status (errors.ts: fixed messages, non-secret detail).

import type { Caller } from './operations.js';
import { protocolFail } from './api_errors.js';

export const FLEET_TARGET_PREFIX = 'CofferFleetService';
/** The action prefix of Coffer's own operations in the access-keys file (CloudHSMv2's is `cloudhsm`). */
export const COFFER_ACTION_PREFIX = 'coffer';
export const FLEET_OPERATION_NAMES = ['RegisterNode', 'ListNodes', 'DeregisterNode'] as const;
export type FleetOperationName = (typeof FLEET_OPERATION_NAMES)[number];
export type FleetOperationHandler = (input: unknown, caller: Caller) => Promise<Record<string, unknown>>;
export type FleetOperations = Readonly<Record<FleetOperationName, FleetOperationHandler>>;

/** A request's members (there is no service model for Coffer's own operations). */
export type Members = Readonly<Record<string, unknown>>;

/** The request as a JSON object with only `allowed` members; anything else is ValidationException. */
export function requestMembers(input: unknown, allowed: readonly string[]): Members {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) protocolFail('ValidationException', 'The request must be a JSON object');
  for (const name of Object.keys(input)) {
    if (!allowed.includes(name)) protocolFail('ValidationException', `Unknown member; expected only ${allowed.join(', ')}`);
  }
  return input as Members;
}

const NAMES: ReadonlySet<string> = new Set(FLEET_OPERATION_NAMES);

/** The access-keys action of one of Coffer's own operations: `coffer:RegisterNode`, … */
export function fleetActionOf(name: string): string {
  return `${COFFER_ACTION_PREFIX}:${name}`;
}

/** The fleet operation an X-Amz-Target names; undefined when the target is not under
 * FLEET_TARGET_PREFIX (the CloudHSMv2 path decides then); an unknown name under it is refused. */
export function fleetOperationOf(target: string | undefined): FleetOperationName | undefined {
  return operationUnder(target, FLEET_TARGET_PREFIX, NAMES);
}

/** The operation `target` names under `prefix`; undefined when it is not under it; an unknown name under it is refused. */
function operationUnder<N extends string>(target: string | undefined, targetPrefix: string, names: ReadonlySet<string>): N | undefined {
  const prefix = `${targetPrefix}.`;
  if (target?.startsWith(prefix) !== true) return undefined;
  const name = target.slice(prefix.length);
  if (!names.has(name)) protocolFail('UnknownOperationException', `X-Amz-Target must be ${prefix}<Operation> with one of ${[...names].join(', ')}`);
  return name as N;
}

// ── monitoring ───────────────────────────────────────────────────────────────────────────────
// The console's live figures (docs/console.md "Live figures"), served by every service under their
// own prefix and actions, the same way: SigV4, AWS JSON 1.1, `coffer:<Operation>` or `*`.

export const MONITORING_TARGET_PREFIX = 'CofferMonitoringService';
export const MONITORING_OPERATION_NAMES = ['DescribeHsmFigures'] as const;
export type MonitoringOperationName = (typeof MONITORING_OPERATION_NAMES)[number];
export type MonitoringOperations = Readonly<Record<MonitoringOperationName, FleetOperationHandler>>;

const MONITORING_NAMES: ReadonlySet<string> = new Set(MONITORING_OPERATION_NAMES);

/** The monitoring operation an X-Amz-Target names; undefined when the target is not under
 * MONITORING_TARGET_PREFIX; an unknown name under it is refused. */
export function monitoringOperationOf(target: string | undefined): MonitoringOperationName | undefined {
  return operationUnder(target, MONITORING_TARGET_PREFIX, MONITORING_NAMES);
}
