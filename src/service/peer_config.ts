// The peer regions of a `coffer service` (docs/control-plane.md "Copies to other regions"): where
// each peer's API listens, and the access key this service signs with when it sends a backup copy
// there. Read once at start, from JSON (`coffer service --peers FILE`, mode 0600: it holds secrets):
//
//   { "peers": [ { "region": "eu-west-1", "endpoint": "http://10.0.0.5:8223",
//                  "accessKeyId": "AKIA…", "secretAccessKey": "…" } ] }
//
// `endpoint` is an http(s) origin: no path, query, fragment or credentials. Anything else — an
// unknown field, a region given twice or this service's own, a malformed key — is refused whole
// with COFFER_PEER_CONFIG_INVALID, whose detail names the entry and field but never a secret.

import { readFileSync } from 'node:fs';
import { fail, isCofferError } from '../errors.js';
import { SECRET_ACCESS_KEY_CHARS_MIN } from './api/access_keys.js';
import { REGION_PATTERN } from './api/resources.js';

/** A peer region's service, and the key to sign with when sending to it. */
export interface PeerEndpoint {
  readonly region: string;
  /** An origin: `http(s)://host:port`. */
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/** Far more regions than a deployment has. */
export const PEERS_MAX = 100;
/** Bounds the file read (PEERS_MAX entries of a few hundred bytes each). */
export const PEERS_FILE_BYTES_MAX = 64 * 1024;
const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;
const SECRET_ACCESS_KEY_CHARS_MAX = 128;
const FIELDS = ['region', 'endpoint', 'accessKeyId', 'secretAccessKey'];

function invalid(detail: Record<string, string | number>): never {
  return fail('COFFER_PEER_CONFIG_INVALID', detail);
}

/** Reads and checks a peers file. Its content never appears in an error: it holds secrets. */
export function readPeersFile(path: string, ownRegion: string): PeerEndpoint[] {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > PEERS_FILE_BYTES_MAX) invalid({ reason: 'file too large', limit: PEERS_FILE_BYTES_MAX });
    text = bytes.toString('utf8');
  } catch (e) {
    if (isCofferError(e)) throw e;
    return invalid({ reason: 'file cannot be read' });
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    return invalid({ reason: 'file is not JSON' });
  }
  return parsePeers(config, ownRegion);
}

/** Parses and checks the configuration of a service in `ownRegion`. */
export function parsePeers(config: unknown, ownRegion: string): PeerEndpoint[] {
  const top = typeof config === 'object' && config !== null && !Array.isArray(config) ? (config as Record<string, unknown>) : undefined;
  if (top === undefined || Object.keys(top).some((k) => k !== 'peers') || !Array.isArray(top['peers'])) invalid({ field: 'peers', reason: 'not an object with a list "peers"' });
  const list = top['peers'] as unknown[];
  if (list.length > PEERS_MAX) invalid({ field: 'peers', reason: 'too many', limit: PEERS_MAX });
  const regions = new Set<string>();
  return list.map((raw, index): PeerEndpoint => {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) invalid({ index, reason: 'not an object' });
    const entry = raw as Record<string, unknown>;
    if (Object.keys(entry).some((k) => !FIELDS.includes(k))) invalid({ index, reason: 'unknown field' });
    const missing = FIELDS.find((f) => !Object.hasOwn(entry, f));
    if (missing !== undefined) invalid({ index, field: missing, reason: 'missing' });
    const { region, endpoint, accessKeyId, secretAccessKey } = entry;
    if (typeof region !== 'string' || !REGION_PATTERN.test(region)) invalid({ index, field: 'region', reason: 'not an AWS-style region' });
    if (region === ownRegion) invalid({ index, field: 'region', reason: "this service's own region" });
    if (regions.has(region)) invalid({ index, field: 'region', reason: 'duplicate' });
    regions.add(region);
    if (typeof accessKeyId !== 'string' || !ACCESS_KEY_ID.test(accessKeyId)) invalid({ index, field: 'accessKeyId', reason: 'not 16-128 of [A-Z0-9]' });
    if (typeof secretAccessKey !== 'string' || secretAccessKey.length < SECRET_ACCESS_KEY_CHARS_MIN || secretAccessKey.length > SECRET_ACCESS_KEY_CHARS_MAX) {
      invalid({ index, field: 'secretAccessKey', reason: `not a string of ${SECRET_ACCESS_KEY_CHARS_MIN}-${SECRET_ACCESS_KEY_CHARS_MAX} characters` });
    }
    return Object.freeze({ region, endpoint: origin(endpoint, index), accessKeyId, secretAccessKey });
  });
}

function origin(value: unknown, index: number): string {
  let url: URL | undefined;
  try {
    url = typeof value === 'string' ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  const plain = url !== undefined && (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === ''
    && url.pathname === '/' && url.search === '' && url.hash === '' && !(value as string).includes('?') && !(value as string).includes('#');
  if (url === undefined || !plain) invalid({ index, field: 'endpoint', reason: 'not an http(s) origin (scheme, host and port only)' });
  return url.origin;
}
