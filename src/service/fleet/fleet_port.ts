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
  /** The loopback address (local fleet) or a hint; the device returned says where it listens. */
  readonly eniIp: string;
  /** The cluster's data-plane port (CloudHSM uses 2223; 0 = any free port). */
  readonly dataPlanePort: number;
}

/**
 * Failures are typed errors:
 *   COFFER_FLEET_EXHAUSTED   no device can be provisioned (remote fleet empty, a cap reached)
 *   COFFER_FLEET_DEVICE_LOST a device cannot be reattached (its process and data are gone)
 *   COFFER_FLEET_UNTRUSTED   a registered node failed attestation against the roots
 */
export interface Fleet {
  /** A blank commissioned device, started and verified. */
  provision(request: ProvisionRequest): Promise<FleetDevice>;
  /** After a service restart: the running device found again, or restarted from its data. */
  reattach(device: FleetDevice): Promise<FleetDevice>;
  /** The device's management client (pinned to its serial). */
  management(device: FleetDevice): ManagementClient;
  /** Zeroises the device and gives it back (a local process stops and its data is removed). */
  release(device: FleetDevice): Promise<void>;
  /** Stops watching and closes clients; local node processes are left running unless `stopDevices`. */
  close(options?: { readonly stopDevices?: boolean }): Promise<void>;
}
