// Key management and single crypto calls over the wire (docs/wire-protocol.md §5, codes 0x004x and
// 0x005x). Each handler maps one request to the device Session call of the same name; the device
// decides everything (ownership, attributes, FIPS, quorum). What this module adds is the scoping of
// session objects to the connection (SessionTable.on / made): a handle from SESSION_HANDLE_BASE up
// that another connection made is "not found" here. Asymmetric SIGN and VERIFY use the device's
// async calls (libuv thread pool), so a node's signatures spread over its cores.

import { WIRE_FIND_RESULTS_MAX } from '../formats/limits.js';
import type { WireRequest, WireResponse } from '../formats/wire.js';
import type { Handlers, SessionTable } from './dispatch.js';

type KeyOps =
  | 'GENERATE_KEY' | 'GENERATE_KEY_PAIR' | 'IMPORT_PUBLIC_KEY' | 'IMPORT_PRIVATE_KEY' | 'FIND' | 'GET_ATTRIBUTES' | 'SET_ATTRIBUTE'
  | 'SHARE' | 'UNSHARE' | 'DESTROY' | 'EXPORT_PLAINTEXT' | 'EXPORT_PUBLIC' | 'WRAP_KEY' | 'UNWRAP_KEY' | 'DERIVE_KEY'
  | 'SIGN' | 'VERIFY' | 'ENCRYPT' | 'DECRYPT' | 'DIGEST';

export const KEY_HANDLERS: Handlers<KeyOps> = {
  GENERATE_KEY: ({ sessions: s }, r) => ({ handle: s.made(r.session, s.get(r.session).generateKey(r.spec, r.template)) }),
  GENERATE_KEY_PAIR: ({ sessions: s }, r) => {
    const pair = s.get(r.session).generateKeyPair(r.spec, r.publicTemplate, r.privateTemplate);
    return { publicHandle: s.made(r.session, pair.publicHandle), privateHandle: s.made(r.session, pair.privateHandle) };
  },
  IMPORT_PUBLIC_KEY: ({ sessions: s }, r) => ({ handle: s.made(r.session, s.get(r.session).importPublicKey(r.key, r.template)) }),
  IMPORT_PRIVATE_KEY: ({ sessions: s }, r) => importPrivateKey(s, r),
  FIND: ({ sessions: s }, r) => find(s, r),
  GET_ATTRIBUTES: ({ sessions: s }, r) => s.on(r.session, r.handle).getAttributes(r.handle),
  SET_ATTRIBUTE: ({ sessions: s }, r) => (s.on(r.session, r.handle).setAttribute(r.handle, r.name, r.value), {}),
  SHARE: ({ sessions: s }, r) => (s.on(r.session, r.handle).share(r.handle, r.userName), {}),
  UNSHARE: ({ sessions: s }, r) => (s.on(r.session, r.handle).unshare(r.handle, r.userName), {}),
  DESTROY: ({ sessions: s }, r) => {
    s.on(r.session, r.handle).destroy(r.handle);
    s.destroyed(r.handle);
    return {};
  },
  EXPORT_PLAINTEXT: ({ sessions: s }, r) => exportPlaintext(s, r),
  EXPORT_PUBLIC: ({ sessions: s }, r) => ({ pem: s.on(r.session, r.handle).exportPublic(r.handle) }),
  WRAP_KEY: ({ sessions: s }, r) => ({ wrapped: s.on(r.session, r.wrappingHandle, r.targetHandle).wrapKey(r.wrappingHandle, r.targetHandle, r.params) }),
  UNWRAP_KEY: ({ sessions: s }, r) => ({
    handle: s.made(r.session, s.on(r.session, r.unwrappingHandle).unwrapKey(r.unwrappingHandle, r.wrapped, r.params, r.template)),
  }),
  DERIVE_KEY: ({ sessions: s }, r) => ({ handle: s.made(r.session, s.on(r.session, r.baseHandle).deriveKey(r.baseHandle, r.params, r.template)) }),
  SIGN: async ({ sessions: s }, r) => ({ signature: await s.on(r.session, r.handle).signAsync(r.handle, r.params, r.data) }),
  VERIFY: async ({ sessions: s }, r) => ({ valid: await s.on(r.session, r.handle).verifyAsync(r.handle, r.params, r.data, r.signature) }),
  ENCRYPT: ({ sessions: s }, r) => ({ data: s.on(r.session, r.handle).encrypt(r.handle, r.params, r.data) }),
  DECRYPT: ({ sessions: s }, r) => ({ data: s.on(r.session, r.handle).decrypt(r.handle, r.params, r.data) }),
  DIGEST: ({ sessions: s }, r) => ({ digest: s.get(r.session).digest(r.params, r.data) }),
};

/** A DER private key arrives in a fresh buffer (wire_ops secretBytes): zeroised once imported.
 * A PEM one is a JS string and cannot be (docs/wire-protocol.md §6). */
function importPrivateKey(s: SessionTable, r: WireRequest<'IMPORT_PRIVATE_KEY'>): WireResponse<'IMPORT_PRIVATE_KEY'> {
  try {
    return { handle: s.made(r.session, s.get(r.session).importPrivateKey(r.key, r.template)) };
  } finally {
    if (r.key instanceof Uint8Array) r.key.fill(0);
  }
}

/** The key leaves the device's SecretBytes as a plain copy, which dispatch() zeroises once the
 * reply frame is encoded. */
function exportPlaintext(s: SessionTable, r: WireRequest<'EXPORT_PLAINTEXT'>): WireResponse<'EXPORT_PLAINTEXT'> {
  const secret = s.on(r.session, r.handle).exportPlaintext(r.handle);
  try {
    return { key: secret.use((bytes) => bytes.slice()) };
  } finally {
    secret.destroy();
  }
}

/** FIND pages in handle order after `afterHandle` (docs/wire-protocol.md §5 notes); another
 * connection's session objects are left out. */
function find(s: SessionTable, r: WireRequest<'FIND'>): WireResponse<'FIND'> {
  const all = s.get(r.session).find(r.filter).filter((o) => s.visible(o.handle)).sort((a, b) => a.handle - b.handle);
  const after = r.afterHandle;
  const rest = after === undefined ? all : all.filter((o) => o.handle > after);
  const limit = Math.min(r.limit, WIRE_FIND_RESULTS_MAX);
  return { objects: rest.slice(0, limit), more: rest.length > limit };
}
