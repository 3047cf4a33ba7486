// The fleet (docs/architecture.md §6): where the control plane gets HSMs from and gives them back.
// A port with adapters held to one conformance suite (test/service/fleet/fleet_conformance.ts):
//   - local node processes (the default): `coffer hsm serve` children, one per HSM, each on its own
//     loopback address (127.0.0.N, the HSM's EniIp) and the cluster's one data-plane port;
//   - registered remote nodes: an operator starts `coffer hsm serve` elsewhere and registers its
//     management endpoint; the fleet authenticates it by its device attestation before use;
//   - in-process devices (tests only: they live under test/, since the service may not import the
//     node layer).
//
// A device the fleet hands out is manufactured and commissioned (by the ceremony tools; in
// development by the development authorities), blank (no cluster), running, and reachable over its
// management interface with the operator's client certificate. The control plane reaches a device
// only through `management(device)`: health, sealed backup, restore, cluster CSR, initialisation
// and zeroisation — never a key, never a user.

import type { ManagementClient } from '../../management/client.js';

/** What the service records about a device it holds (no secret: endpoints and a serial). */
export interface FleetDevice {
  /** The fleet's own stable id for the device (survives a service restart). */
  readonly deviceId: string;
  /** The device serial its certificates name; management clients pin it. */
  readonly serial: string;
  /** The data-plane address clients use: the HSM's EniIp. */
  readonly host: string;
  readonly port: number;
  readonly managementHost: string;
  readonly managementPort: number;
}

export interface ProvisionRequest {
  readonly clusterId: string;
  readonly hsmId: string;
  /** The address the device must listen on (its EniIp: a loopback address 127.0.0.N for the local
   * fleet, the address of a registered node for the remote one); absent: the fleet chooses. A
   * device is never handed out on another address than the one asked for. */
  readonly eniIp?: string;
  /** The cluster's data-plane port (CloudHSM uses 2223; 0 = any port): one port for every HSM of
   * a cluster, each on its own address. */
  readonly dataPlanePort: number;
  /** The cluster's mode: a device is commissioned in one mode for life, and restores only backups of
   * that mode. Default NON_FIPS. */
  readonly mode?: 'FIPS' | 'NON_FIPS';
}

/** A device that stopped without the fleet being asked to stop it. */
export interface DeviceExit {
  readonly device: FleetDevice;
  /** `exited`: its process ended (exit status or signal when the fleet saw them, else null);
   * `unreachable`: a remote node stopped answering. */
  readonly reason: 'exited' | 'unreachable';
  readonly code: number | null;
  readonly signal: string | null;
}

/**
 * Failures are typed errors:
 *   COFFER_FLEET_EXHAUSTED            no device can be provisioned (remote fleet empty, no address left)
 *   COFFER_FLEET_ADDRESS_UNAVAILABLE  the address asked for is taken or not one this fleet serves
 *   COFFER_FLEET_DEVICE_LOST          a device cannot be reattached (its process and data are gone)
 *   COFFER_FLEET_DEVICE_START         a local device process did not start
 *   COFFER_FLEET_UNTRUSTED            a node failed attestation against the roots
 *   COFFER_FLEET_NODE_NOT_BLANK       a node to be registered or handed out holds a cluster
 * A device is verified over its management interface (attestation, serial, blank) before it is
 * handed out. Details: docs/fleet.md.
 */
export interface Fleet {
  /** A blank commissioned device, started and verified, of the request's mode. Called only for an
   * HSM that holds no device: a device a fleet still holds for that HSM is left over from a
   * provision a crash cut short, and the fleet may release it. */
  provision(request: ProvisionRequest): Promise<FleetDevice>;
  /** After a service restart: the running device found again, or restarted from its data. */
  reattach(device: FleetDevice): Promise<FleetDevice>;
  /** The device's management client (pinned to its serial). */
  management(device: FleetDevice): ManagementClient;
  /** Zeroises the device and gives it back (a local process stops and its data is removed). */
  release(device: FleetDevice): Promise<void>;
  /** Tells `listener` of every device that stops without `release` or `close` having asked it to
   * (in addition to what health probes find); returns the unsubscribe function. */
  onDeviceExit(listener: (exit: DeviceExit) => void): () => void;
  /** Stops watching and closes clients; local node processes are left running unless `stopDevices`. */
  close(options?: { readonly stopDevices?: boolean }): Promise<void>;
}
