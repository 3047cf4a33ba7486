// What the p11-kit server hands decoded calls to (docs/pkcs11.md "Backend"): one optional method per
// PKCS#11 function, named as the function, taking the call's typed request and returning its CK_RV
// with the outputs. A method left out answers CKR_FUNCTION_NOT_SUPPORTED. The token semantics live
// behind this interface (the SDK-backed backend is the next slice); the server only carries calls.
//
// Output conventions, as p11-kit carries them (rpc-server.c proto_write_byte_array and friends):
// - For outputs the caller offers a buffer for (fy, fu in the request; ay, au in the answer), the
//   backend applies PKCS#11 v2.40 §5.2's two-call rule itself, because only it knows whether a
//   length query may leave its operation running: no buffer (`present` false) → rv CKR_OK with
//   `{ lengthOnly: n }`; a buffer too small → rv CKR_BUFFER_TOO_SMALL with `{ lengthOnly: n }`;
//   otherwise CKR_OK with the data. fitBytes and fitUlongs below do exactly that.
// - C_GetAttributeValue answers its template with CKR_OK, CKR_ATTRIBUTE_SENSITIVE,
//   CKR_ATTRIBUTE_TYPE_INVALID or CKR_BUFFER_TOO_SMALL, and the template travels with each of them.
// - Any other rv than CKR_OK (or the ones just named) travels alone, in an ERROR message.
// A backend that throws a CofferError has its registry CKR_* sent; anything else it throws is a bug.

import { CKR } from './constants.js';
import type { CallName, CallOf } from './rpc_calls.js';
import type { LengthOnly, OutBuffer, ProtocolVersion } from './rpc_codec.js';
import type { RequestOf, ResponseOf } from './rpc_messages.js';

/** The connection a call came on: what a backend keys sessions by. */
export interface Pkcs11Connection {
  /** Unique per connection of this server. */
  readonly id: string;
  /** The protocol version the handshake settled on. */
  readonly version: ProtocolVersion;
}

/** Outputs of a call, without the `rv` field some responses carry (the server fills it in). */
export type Outputs<N extends CallName> = Omit<ResponseOf<N>, 'rv'>;

export type Answer<N extends CallName> =
  | { readonly rv: typeof CKR.OK; readonly out: Outputs<N> }
  | { readonly rv: number; readonly out?: Outputs<N> };

export type Pkcs11Handler<N extends CallName> = (request: RequestOf<N>, connection: Pkcs11Connection) => Answer<N> | Promise<Answer<N>>;

export type Pkcs11Backend = { readonly [N in CallName]?: Pkcs11Handler<N> } & {
  /** The connection finalised (C_Finalize) or went away: drop its sessions and operations. */
  readonly release?: (connection: Pkcs11Connection) => void | Promise<void>;
};

/** Calls whose answer carries the outputs also with rv CKR_BUFFER_TOO_SMALL (an ay or au output). */
export function hasSizedOutput(call: CallOf<CallName>): boolean {
  return call.response.some((f) => f[1] === 'ay' || f[1] === 'au');
}

/** The two-call rule (PKCS#11 v2.40 §5.2) for a byte output into the caller's buffer. */
export function fitBytes(buffer: OutBuffer, data: Uint8Array): { readonly rv: number; readonly value: Uint8Array | LengthOnly } {
  if (!buffer.present) return { rv: CKR.OK, value: { lengthOnly: data.length } };
  if (buffer.length < data.length) return { rv: CKR.BUFFER_TOO_SMALL, value: { lengthOnly: data.length } };
  return { rv: CKR.OK, value: data };
}

/** The two-call rule for a ulong output (slot, mechanism and object lists). */
export function fitUlongs(buffer: OutBuffer, items: readonly bigint[]): { readonly rv: number; readonly value: readonly bigint[] | LengthOnly } {
  if (!buffer.present) return { rv: CKR.OK, value: { lengthOnly: items.length } };
  if (buffer.length < items.length) return { rv: CKR.BUFFER_TOO_SMALL, value: { lengthOnly: items.length } };
  return { rv: CKR.OK, value: items };
}
