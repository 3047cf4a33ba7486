// The device identity key (docs/architecture.md §1, §3): an ECDSA P-384 key pair the device generates inside
// itself. The private key never leaves: it is stored in the device's record store (namespace
// 'device'; the sealed adapter encrypts it under the device storage key) and used only through
// sign(). The factory sees a PKCS#10 request (RFC 2986) and certifies the public key; operators,
// clients and restoring peers verify the device's signatures (ceremony transcripts, backups) with
// the certificate.
//
// The device serial is derived from the public key: "CFR-" + upper-case hex of the first 8 bytes
// of SHA-256(SPKI DER) (deviceSerialOf, src/formats/device_chain.ts, where every verifier finds it).
// It is therefore bound to the key, and a certificate naming another serial for this key is refused.
//
// Signatures are ECDSA P-384 with SHA-384 in IEEE P1363 form (r ‖ s, 96 bytes). sign() signs the
// exact bytes given: every caller must put a distinct context string first (the ceremony
// transcript starts with "coffer akbk ceremony transcript v1\0") so that no signature made for one
// purpose can be replayed as another.

import { createPrivateKey, createSign, sign, verify, webcrypto, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import { assert } from '../../assert.js';
import { fail } from '../../errors.js';
import type { DeviceState, StateReader } from '../state/device_state.js';
import { deviceSerialOf } from '../../formats/device_chain.js';
import { ECDSA_SHA384, EC_P384, derOf, p384PublicKey, parseCsr, pemOf, spkiOf, x509 } from '../../formats/x509.js';

/** Re-exported for the device code that names serials; the one definition is in formats/device_chain.ts. */
export { deviceSerialOf };

/** Record-store namespace of every provisioning record. */
export const DEVICE_NS = 'device';
const KEY_ID = 'identity.key';
const CSR_ID = 'identity.csr';
/** Organisational unit named in device CSRs and certificates. */
export const DEVICE_OU = 'Coffer HSM';

/** An incremental ECDSA P-384 / SHA-384 signer (P1363): update() in order, then sign() once. */
export interface StreamSigner {
  update(chunk: Uint8Array): void;
  sign(): Uint8Array;
}

export class DeviceIdentity {
  readonly serial: string;
  readonly #privateKey: KeyObject;
  readonly #spki: Uint8Array;
  readonly #csr: x509.Pkcs10CertificateRequest;

  private constructor(privateKey: KeyObject, csr: x509.Pkcs10CertificateRequest) {
    this.#privateKey = privateKey;
    this.#csr = csr;
    this.#spki = spkiOf(csr);
    this.serial = deviceSerialOf(this.#spki);
  }

  /**
   * Generates the identity key pair and its CSR and persists both as one local change set. Refuses with
   * COFFER_DEVICE_IDENTITY_EXISTS if the store already holds an identity.
   */
  static async generate(state: DeviceState): Promise<DeviceIdentity> {
    if (state.get(DEVICE_NS, KEY_ID) !== undefined) fail('COFFER_DEVICE_IDENTITY_EXISTS');
    const keys = await webcrypto.subtle.generateKey(EC_P384, true, ['sign', 'verify']);
    const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: [{ CN: [deviceSerialOf(spki)] }, { OU: [DEVICE_OU] }],
      keys,
      signingAlgorithm: ECDSA_SHA384,
    });
    const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    try {
      await state.submit(() => {
        if (state.get(DEVICE_NS, KEY_ID) !== undefined) fail('COFFER_DEVICE_IDENTITY_EXISTS');
        const ops = [{ op: 'put', ns: DEVICE_NS, id: KEY_ID, value: pkcs8.slice() }, { op: 'put', ns: DEVICE_NS, id: CSR_ID, value: derOf(csr) }] as const;
        return { changes: [{ scope: 'local', kind: 'device.identity', ops }], result: undefined };
      });
      return new DeviceIdentity(privateKeyOf(pkcs8), csr);
    } finally {
      pkcs8.fill(0);
    }
  }

  /** The identity persisted in `store`, or undefined if none was generated yet. */
  static load(store: StateReader): DeviceIdentity | undefined {
    const pkcs8 = store.get(DEVICE_NS, KEY_ID);
    const csrDer = store.get(DEVICE_NS, CSR_ID);
    if (pkcs8 === undefined || csrDer === undefined) return undefined;
    try {
      return new DeviceIdentity(privateKeyOf(pkcs8), parseCsr(csrDer));
    } finally {
      pkcs8.fill(0);
    }
  }

  /** SubjectPublicKeyInfo DER of the identity key (a copy). */
  publicKeySpki(): Uint8Array {
    return this.#spki.slice();
  }

  /** The certificate request for the factory, PEM. */
  csrPem(): string {
    return pemOf(this.#csr);
  }

  /** ECDSA P-384 / SHA-384 signature (P1363) over exactly `message`; see the header on context. */
  sign(message: Uint8Array): Uint8Array {
    return new Uint8Array(sign('sha384', message, { key: this.#privateKey, dsaEncoding: 'ieee-p1363' }));
  }

  /**
   * The same signature as sign() over a message fed in pieces (a backup of any size is signed
   * without holding it: SHA-384 runs incrementally, then the digest is signed). The first piece
   * must be the caller's context string, as for sign().
   */
  streamSigner(): StreamSigner {
    const signer = createSign('sha384');
    let done = false;
    return {
      update: (chunk) => {
        assert(!done, 'no update after sign');
        signer.update(chunk);
      },
      sign: () => {
        assert(!done, 'a stream signer signs once');
        done = true;
        return new Uint8Array(signer.sign({ key: this.#privateKey, dsaEncoding: 'ieee-p1363' }));
      },
    };
  }

  toJSON(): { serial: string } {
    return { serial: this.serial };
  }

  toString(): string {
    return `DeviceIdentity { serial: ${this.serial} }`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** Verifies a device identity signature with the identity public key (SPKI DER). */
export function verifyIdentitySignature(spki: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  const key = p384PublicKey(spki);
  try {
    return verify('sha384', message, { key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

function privateKeyOf(pkcs8: Uint8Array): KeyObject {
  // Buffer.from(arrayBuffer, offset, length) is a view, not a copy: nothing extra to wipe.
  return createPrivateKey({ key: Buffer.from(pkcs8.buffer, pkcs8.byteOffset, pkcs8.byteLength), format: 'der', type: 'pkcs8' });
}
