// The remote fleet's registry (docs/fleet.md "Remote fleet", "Several service processes"): every
// registered node, kept as ONE document of the metadata store (collection `devices`, id
// `remote-fleet`) rather than in a file of one process, because several `coffer service` processes,
// on different machines, share one PostgreSQL store and must all see the same nodes.
//
// Every change is a read-modify-write with compare-and-set on the document's version: a
// registration through one process, a provision by the orchestrating process and a deregistration
// through a third are serialised by the store, and the loser of a race re-reads and decides again
// (a node handed out meanwhile cannot be deregistered; two registrations of one serial make one
// record; two nodes can never claim one data-plane address). One document keeps those checks
// across records atomic; it is bounded by REMOTE_NODES_MAX.
//
// The document: `{ "format": "coffer-remote-fleet", "version": 1, "devices": [ … ] }`, each device
// with its id, serial, endpoints and state (`free`, `assigned`, `zeroise-owed`) and, while assigned,
// the HSM it serves. No secret: endpoints, serials and ids.

import { fail, isCofferError } from '../../errors.js';
import type { MetadataStore } from '../../storage/metadata_port.js';
import { RecordFields } from './fleet_file.js';
import type { FleetDevice } from './fleet_port.js';

export const REMOTE_REGISTRY_COLLECTION = 'devices';
export const REMOTE_REGISTRY_ID = 'remote-fleet';
export const REMOTE_REGISTRY_FORMAT = 'coffer-remote-fleet';
export const REMOTE_REGISTRY_VERSION = 1;
/** Registered nodes at most: a record is about 250 bytes of JSON, so 500 stay well inside one
 * document's 256 KiB (DOCUMENT_BYTES_MAX) — and far above the HSMs one region runs. */
export const REMOTE_NODES_MAX = 500;
/** A change that keeps losing its compare-and-set this many times gives up (COFFER_METADATA_CONFLICT):
 * something rewrites the registry continuously. Each attempt is one read and one commit. */
export const REGISTRY_CAS_ATTEMPTS_MAX = 16;

export const REMOTE_DEVICE_ID = /^remote-[a-z2-7]{12}$/;
const TCP_PORT_MAX = 65535;
/** Host names and addresses as registrations give them. */
export const REMOTE_HOST = /^[0-9A-Za-z.:_-]{1,253}$/;
/** The HSM id a ProvisionRequest names (the service's ids are `hsm-…`; the port does not require it). */
const HSM_ID = /^[\x21-\x7e]{1,128}$/;

export type RemoteState = 'free' | 'assigned' | 'zeroise-owed';

/** A registered node: where it is (as the fleet hands it out), and its registry state. */
export interface RemoteRecord extends FleetDevice {
  readonly state: RemoteState;
  /** The mode its device was commissioned in (for life): it serves clusters of that mode only. */
  readonly mode: 'FIPS' | 'NON_FIPS';
  /** The HSM the node serves while `assigned`. */
  readonly hsmId?: string;
}

/** The registry as read: its records and the document version a change must compare with. */
export interface RegistrySnapshot {
  readonly records: readonly RemoteRecord[];
  /** 0 when the document does not exist yet. */
  readonly version: number;
}

/** The part of the metadata store the registry uses. */
export type RegistryStore = Pick<MetadataStore, 'get' | 'commit'>;

export async function readRegistry(store: RegistryStore): Promise<RegistrySnapshot> {
  const doc = await store.get(REMOTE_REGISTRY_COLLECTION, REMOTE_REGISTRY_ID);
  if (doc === undefined) return { records: [], version: 0 };
  return { records: decodeRegistry(doc.body), version: doc.version };
}

/**
 * Applies `change` to a fresh read until its write commits (see the header). `change` returns the
 * new records and a result, or `undefined` records to write nothing; it may throw to refuse, and
 * must be free of side effects, since it may run again on a newer read.
 */
export async function updateRegistry<T>(store: RegistryStore, change: (records: readonly RemoteRecord[]) => { readonly records?: readonly RemoteRecord[]; readonly result: T }): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const { records, version } = await readRegistry(store);
    const { records: next, result } = change(records);
    if (next === undefined) return result;
    if (next.length > REMOTE_NODES_MAX) fail('COFFER_FORMAT_LIMIT', { limit: 'remoteNodes', max: REMOTE_NODES_MAX });
    try {
      await store.commit([{ collection: REMOTE_REGISTRY_COLLECTION, id: REMOTE_REGISTRY_ID, parent: null, expectedVersion: version, body: encodeRegistry(next) }]);
      return result;
    } catch (e) {
      if (!isCofferError(e, 'COFFER_METADATA_CONFLICT') || attempt >= REGISTRY_CAS_ATTEMPTS_MAX) throw e;
    }
  }
}

export function encodeRegistry(records: readonly RemoteRecord[]): string {
  return JSON.stringify({ format: REMOTE_REGISTRY_FORMAT, version: REMOTE_REGISTRY_VERSION, devices: records });
}

/** Refuses a document of another format or version, or with a malformed record. */
export function decodeRegistry(body: string): RemoteRecord[] {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return fail('COFFER_FORMAT_BAD_MAGIC', { format: REMOTE_REGISTRY_FORMAT });
  }
  const o = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
  if (o['format'] !== REMOTE_REGISTRY_FORMAT) fail('COFFER_FORMAT_BAD_MAGIC', { format: REMOTE_REGISTRY_FORMAT });
  if (o['version'] !== REMOTE_REGISTRY_VERSION) {
    fail('COFFER_FORMAT_UNKNOWN_VERSION', { format: REMOTE_REGISTRY_FORMAT, found: String(o['version']), supported: REMOTE_REGISTRY_VERSION });
  }
  const devices = o['devices'];
  if (!Array.isArray(devices)) return fail('COFFER_FORMAT_BAD_MAGIC', { format: REMOTE_REGISTRY_FORMAT, field: 'devices' });
  return devices.map(decodeRecord);
}

function decodeRecord(value: unknown): RemoteRecord {
  const f = new RecordFields(value, REMOTE_REGISTRY_FORMAT);
  const state = f.string('state', /^(free|assigned|zeroise-owed)$/) as RemoteState;
  const hsmId = f.optionalString('hsmId');
  if (hsmId !== undefined && (!HSM_ID.test(hsmId) || state !== 'assigned')) fail('COFFER_FORMAT_BAD_MAGIC', { format: REMOTE_REGISTRY_FORMAT, field: 'hsmId' });
  return {
    deviceId: f.string('deviceId', REMOTE_DEVICE_ID), serial: f.string('serial'), host: f.string('host', REMOTE_HOST), port: f.integer('port', 1, TCP_PORT_MAX),
    managementHost: f.string('managementHost', REMOTE_HOST), managementPort: f.integer('managementPort', 1, TCP_PORT_MAX), state,
    mode: f.string('mode', /^(FIPS|NON_FIPS)$/) as RemoteRecord['mode'], ...(hsmId === undefined ? {} : { hsmId }),
  };
}
