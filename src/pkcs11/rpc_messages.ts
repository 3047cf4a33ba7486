// Whole p11-kit RPC messages (docs/pkcs11.md "Messages"): call id ‖ signature ‖ fields, typed per
// call from the table of rpc_calls.ts. The request and response types of every call are derived
// from that table, so the names a backend sees and the bytes on the wire cannot drift apart.
//
// Decoding a request checks, in p11-kit's order (rpc-message.c p11_rpc_message_parse): a call id
// this protocol version defines (not ERROR), then a signature byte array equal to the call's, then
// the fields, then that nothing follows them. A wrong call id or signature is COFFER_P11_CALL_UNKNOWN
// (the peer is not speaking this protocol: the server closes, as p11-kit's does); a field that does
// not decode is one of the codec's errors (answered, the connection stays).

import { fail } from '../errors.js';
import { Writer } from '../formats/wire_codec.js';
import { CALLS, LAST_CALL_ID, callById, callByName, signatureOf, type AnyCall, type CallName, type CallOf, type FieldSpec } from './rpc_calls.js';
import { FRAME_HEADER_BYTES } from './rpc_transport.js';
import { codecContext, malformed, readByteArray, readField, reader, writeByteArray, writeField, writeU64, type FieldTypes, type ProtocolVersion } from './rpc_codec.js';

type FieldsOf<F extends readonly FieldSpec[]> = { readonly [E in F[number] as E[0]]: FieldTypes[E[1]] };

export type RequestOf<N extends CallName> = FieldsOf<CallOf<N>['request']>;
export type ResponseOf<N extends CallName> = FieldsOf<CallOf<N>['response']>;

/** A decoded request of some call; `name` narrows `request`. */
export type AnyRequest = { [N in CallName]: { readonly name: N; readonly request: RequestOf<N> } }[CallName];

const ERROR_CALL = CALLS[0];
const SIGNATURES = new Map<number, { request: Uint8Array; response: Uint8Array }>(
  CALLS.map((c) => [c.id, { request: new TextEncoder().encode(signatureOf(c.request)), response: new TextEncoder().encode(signatureOf(c.response)) }]),
);

/** Is this call part of what the negotiated protocol version defines? */
export function callInVersion(call: AnyCall, version: ProtocolVersion): boolean {
  return call.id >= 1 && call.id <= LAST_CALL_ID[version] && call.since <= version;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function encode(call: AnyCall, version: ProtocolVersion, fields: readonly FieldSpec[], signature: Uint8Array, values: Record<string, unknown>): Uint8Array {
  const w = new Writer(256);
  writeMessage(w, call, version, fields, signature, values);
  return w.buf.slice(0, w.pos);
}

function writeMessage(w: Writer, call: AnyCall, version: ProtocolVersion, fields: readonly FieldSpec[], signature: Uint8Array, values: Record<string, unknown>): void {
  w.u32(call.id);
  writeByteArray(w, signature);
  for (const f of fields) writeField(w, version, f, values[f[0]]);
}

/** The server's answers are written here after their frame header and copied out once (the
 * data plane's way, formats/wire.ts): no buffer of its own per answer, which at 8 sessions is a
 * visible share of the bridge's allocation and garbage collection. Wiped after each answer. */
const answerScratch = new Writer(64 * 1024);

/** A whole transport frame (rpc_transport.ts: code ‖ options length 0 ‖ body length ‖ body) around
 * the body `write` produces; the same bytes as encodeFrame(code, body). */
function framed(code: number, write: (w: Writer) => void): Uint8Array {
  const w = answerScratch;
  try {
    w.u32(code);
    w.u32(0);
    w.u32(0);
    write(w);
    w.view.setUint32(8, w.pos - FRAME_HEADER_BYTES);
    return w.take();
  } finally {
    w.buf.fill(0, 0, w.pos); // a value refused midway may have left part of a secret behind
    w.pos = 0;
  }
}

/** encodeFrame(code, encodeResponse(version, name, response)) in one pass. */
export function encodeResponseFrame<N extends CallName>(code: number, version: ProtocolVersion, name: N, response: ResponseOf<N>): Uint8Array {
  const call = callByName(name) as AnyCall;
  const sig = SIGNATURES.get(call.id)?.response ?? new Uint8Array(0);
  return framed(code, (w) => writeMessage(w, call, version, call.response, sig, response));
}

/** encodeFrame(code, encodeErrorResponse(rv)) in one pass. */
export function encodeErrorFrame(code: number, rv: number): Uint8Array {
  return framed(code, (w) => writeError(w, rv));
}

export function encodeRequest<N extends CallName>(version: ProtocolVersion, name: N, request: RequestOf<N>): Uint8Array {
  const call = callByName(name) as AnyCall;
  const sig = SIGNATURES.get(call.id)?.request ?? new Uint8Array(0);
  return encode(call, version, call.request, sig, request);
}

export function encodeResponse<N extends CallName>(version: ProtocolVersion, name: N, response: ResponseOf<N>): Uint8Array {
  const call = callByName(name) as AnyCall;
  const sig = SIGNATURES.get(call.id)?.response ?? new Uint8Array(0);
  return encode(call, version, call.response, sig, response);
}

/** The ERROR message: call id 0, signature "u", the CK_RV (rpc-server.c p11_rpc_server_handle). */
export function encodeErrorResponse(rv: number): Uint8Array {
  const w = new Writer(32);
  writeError(w, rv);
  return w.buf.slice(0, w.pos);
}

const ERROR_SIGNATURE = new TextEncoder().encode('u');

function writeError(w: Writer, rv: number): void {
  w.u32(ERROR_CALL.id);
  writeByteArray(w, ERROR_SIGNATURE);
  writeU64(w, BigInt(rv));
}

/** Reads the call id and checks the signature; returns the call and the reader positioned at the fields. */
function parseHeader(body: Uint8Array, version: ProtocolVersion, side: 'request' | 'response') {
  const r = reader(body);
  if (body.length < 4) fail('COFFER_P11_CALL_UNKNOWN', { reason: 'no call id', length: body.length });
  const id = r.u32();
  const call = callById(id);
  const known = call !== undefined && (side === 'response' ? id === 0 || callInVersion(call, version) : callInVersion(call, version));
  if (!known) fail('COFFER_P11_CALL_UNKNOWN', { callId: id, version });
  let sig: Uint8Array | null;
  try {
    sig = readByteArray(r);
  } catch {
    return fail('COFFER_P11_CALL_UNKNOWN', { callId: id, reason: 'no signature' });
  }
  const expected = SIGNATURES.get(id)?.[side];
  if (sig === null || expected === undefined || !sameBytes(sig, expected)) fail('COFFER_P11_CALL_UNKNOWN', { callId: id, reason: 'signature differs' });
  return { call, r };
}

export function decodeRequest(version: ProtocolVersion, body: Uint8Array): AnyRequest {
  const { call, r } = parseHeader(body, version, 'request');
  const ctx = codecContext(version);
  const out: Record<string, unknown> = {};
  for (const f of call.request) out[f[0]] = readField(r, ctx, f);
  if (r.at !== body.length) malformed('bytes after the last field', { call: call.name, extra: body.length - r.at });
  return { name: call.name, request: out } as AnyRequest;
}

export type DecodedResponse<N extends CallName> = { readonly rv: number } | { readonly response: ResponseOf<N> };

/**
 * A response to a request of `name` (what p11-kit's client reads): an ERROR message's CK_RV, or the
 * fields. `mechanism` is the request's mechanism type, needed only by C_DeriveKey2's P.
 */
export function decodeResponse<N extends CallName>(version: ProtocolVersion, name: N, body: Uint8Array, mechanism?: number): DecodedResponse<N> {
  const { call, r } = parseHeader(body, version, 'response');
  const ctx = codecContext(version);
  if (call.id === ERROR_CALL.id) {
    const rv = readField(r, ctx, ['rv', 'u']) as bigint;
    if (r.at !== body.length) malformed('bytes after the last field', { call: 'ERROR' });
    return { rv: Number(rv) };
  }
  if (call.name !== name) fail('COFFER_P11_CALL_UNKNOWN', { callId: call.id, reason: 'answer to another call' });
  const out: Record<string, unknown> = {};
  for (const f of call.response) out[f[0]] = readField(r, ctx, f, mechanism);
  if (r.at !== body.length) malformed('bytes after the last field', { call: call.name });
  return { response: out as ResponseOf<N> };
}
