// Key management and single crypto calls over the wire (docs/wire-protocol.md §5, codes 0x004x and
// 0x005x). Each handler maps one request to the device Session call of the same name; the device
// decides everything (ownership, attributes, FIPS, quorum, which connection sees a session object,
// whether the object at a handle is the one the request names). Asymmetric SIGN, VERIFY and key-pair
// generation use the device's async calls (libuv thread pool), so a node's work spreads over its cores.

import { WIRE_FIND_RESULTS_MAX } from '../formats/limits.js';
import type { WireRequest, WireResponse } from '../formats/wire.js';
import type { Hsm, Session } from '../hsm/device.js';
import { keyRef, type Handlers, type SessionTable } from './dispatch.js';

type KeyOps =
  | 'GENERATE_KEY' | 'GENERATE_KEY_PAIR' | 'IMPORT_PUBLIC_KEY' | 'IMPORT_PRIVATE_KEY' | 'FIND' | 'GET_ATTRIBUTES' | 'SET_ATTRIBUTE'
  | 'SHARE' | 'UNSHARE' | 'DESTROY' | 'EXPORT_PLAINTEXT' | 'EXPORT_PUBLIC' | 'WRAP_KEY' | 'UNWRAP_KEY' | 'DERIVE_KEY' | 'COPY_OBJECT'
  | 'SIGN' | 'VERIFY' | 'ENCRYPT' | 'DECRYPT' | 'DIGEST' | 'IMPORT_CERTIFICATE' | 'GET_CERTIFICATE';

export const KEY_HANDLERS: Handlers<KeyOps> = {
  GENERATE_KEY: async ({ sessions: s }, r) => made(s.get(r.session), await s.get(r.session).generateKey(r.spec, r.template)),
  GENERATE_KEY_PAIR: async ({ sessions: s }, r) => {
    const session = s.get(r.session);
    const pair = await session.generateKeyPairAsync(r.spec, r.publicTemplate, r.privateTemplate);
    return {
      publicHandle: pair.publicHandle, privateHandle: pair.privateHandle,
      publicIdentity: session.identityOf(pair.publicHandle), privateIdentity: session.identityOf(pair.privateHandle),
    };
  },
  IMPORT_PUBLIC_KEY: async ({ sessions: s }, r) => made(s.get(r.session), await s.get(r.session).importPublicKey(r.key, r.template)),
  IMPORT_PRIVATE_KEY: ({ sessions: s }, r) => importPrivateKey(s, r),
  IMPORT_CERTIFICATE: async ({ sessions: s }, r) => made(s.get(r.session), await s.get(r.session).importCertificate(r.certificate, r.template)),
  GET_CERTIFICATE: ({ sessions: s }, r) => {
    const { der, category } = s.get(r.session).certificate(keyRef(r.handle, r.identity));
    return { certificate: der, category };
  },
  FIND: ({ hsm, sessions: s }, r) => find(hsm, s, r),
  GET_ATTRIBUTES: ({ sessions: s }, r) => s.get(r.session).getAttributes(keyRef(r.handle, r.identity)),
  SET_ATTRIBUTE: async ({ sessions: s }, r) => (await s.get(r.session).setAttribute(keyRef(r.handle, r.identity), r.name, r.value), {}),
  SHARE: async ({ sessions: s }, r) => (await s.get(r.session).share(keyRef(r.handle, r.identity), r.userName), {}),
  UNSHARE: async ({ sessions: s }, r) => (await s.get(r.session).unshare(keyRef(r.handle, r.identity), r.userName), {}),
  DESTROY: async ({ sessions: s }, r) => (await s.get(r.session).destroy(keyRef(r.handle, r.identity)), {}),
  EXPORT_PLAINTEXT: ({ sessions: s }, r) => exportPlaintext(s, r),
  EXPORT_PUBLIC: ({ sessions: s }, r) => ({ pem: s.get(r.session).exportPublic(keyRef(r.handle, r.identity)) }),
  WRAP_KEY: ({ sessions: s }, r) => ({
    wrapped: s.get(r.session).wrapKey(keyRef(r.wrappingHandle, r.identities?.wrapping), keyRef(r.targetHandle, r.identities?.target), r.params),
  }),
  UNWRAP_KEY: async ({ sessions: s }, r) => made(s.get(r.session), await s.get(r.session).unwrapKey(keyRef(r.unwrappingHandle, r.identity), r.wrapped, r.params, r.template)),
  DERIVE_KEY: async ({ sessions: s }, r) => made(s.get(r.session), await s.get(r.session).deriveKey(keyRef(r.baseHandle, r.identity), r.params, r.template)),
  COPY_OBJECT: async ({ sessions: s }, r) => made(s.get(r.session), await s.get(r.session).copyObject(keyRef(r.handle, r.identity), r.template)),
  SIGN: async ({ sessions: s }, r) => ({ signature: await s.get(r.session).signAsync(keyRef(r.handle, r.identity), r.params, r.data) }),
  VERIFY: async ({ sessions: s }, r) => ({ valid: await s.get(r.session).verifyAsync(keyRef(r.handle, r.identity), r.params, r.data, r.signature) }),
  ENCRYPT: ({ sessions: s }, r) => ({ data: s.get(r.session).encrypt(keyRef(r.handle, r.identity), r.params, r.data) }),
  DECRYPT: ({ sessions: s }, r) => ({ data: s.get(r.session).decrypt(keyRef(r.handle, r.identity), r.params, r.data) }),
  DIGEST: ({ sessions: s }, r) => ({ digest: s.get(r.session).digest(r.params, r.data) }),
};

/** A new object's handle and identity, for the reply. */
function made(session: Session, handle: number): { handle: number; identity: Uint8Array } {
  return { handle, identity: session.identityOf(handle) };
}

/** A DER private key arrives in a fresh buffer (wire_ops secretBytes): zeroised once imported.
 * A PEM one is a JS string and cannot be (docs/wire-protocol.md §6). */
async function importPrivateKey(s: SessionTable, r: WireRequest<'IMPORT_PRIVATE_KEY'>): Promise<WireResponse<'IMPORT_PRIVATE_KEY'>> {
  try {
    const session = s.get(r.session);
    return made(session, await session.importPrivateKey(r.key, r.template));
  } finally {
    if (r.key instanceof Uint8Array) r.key.fill(0);
  }
}

/** The key leaves the device's SecretBytes as a plain copy, which dispatch() zeroises once the
 * reply frame is encoded. */
function exportPlaintext(s: SessionTable, r: WireRequest<'EXPORT_PLAINTEXT'>): WireResponse<'EXPORT_PLAINTEXT'> {
  const secret = s.get(r.session).exportPlaintext(keyRef(r.handle, r.identity));
  try {
    return { key: secret.use((bytes) => bytes.slice()) };
  } finally {
    secret.destroy();
  }
}

/** FIND pages in handle order after `afterHandle` (docs/wire-protocol.md §5 notes), with the state
 * position the answer was read at: a client routes calls on these handles only to HSMs known to
 * hold the same state (docs/sdk.md "Which HSM serves a key"). */
function find(hsm: Hsm, s: SessionTable, r: WireRequest<'FIND'>): WireResponse<'FIND'> {
  const all = s.get(r.session).find(r.filter);
  const after = r.afterHandle;
  const rest = after === undefined ? all : all.filter((o) => o.handle > after);
  const limit = Math.min(r.limit, WIRE_FIND_RESULTS_MAX);
  const position = hsm.statePosition();
  return { objects: rest.slice(0, limit), more: rest.length > limit, journalPosition: position.journal.seq, objectLineage: position.objectLineage };
}
