// Bounds of the p11-kit bridge (CONTRIBUTING.md rule 5, docs/pkcs11.md "Limits"). p11-kit itself
// trusts its peer: its frame header carries two u32 lengths and its server allocates whatever they
// say. The bridge serves any local process, so every length and count read from a client is checked
// against one of these before anything it covers is buffered or allocated.

import { WIRE_FRAME_BYTES_MAX } from '../formats/limits.js';

/**
 * The largest message body a frame may carry. Whatever the bridge receives is forwarded to a node in
 * one data-plane frame, which holds at most WIRE_FRAME_BYTES_MAX: a bigger p11-kit message could
 * never be served, so it is refused at its header, before a byte of it is buffered.
 */
export const P11_FRAME_BODY_BYTES_MAX = WIRE_FRAME_BYTES_MAX;

/** The frame's "options" area: p11-kit's client puts its module name there (rpc-transport.c). */
export const P11_FRAME_OPTIONS_BYTES_MAX = 4096;

/**
 * Attributes in one template (aA, fA), nested templates included. Real templates hold tens (OpenSC's
 * largest is about 30, Java's C_GetAttributeValue about 40); this leaves room without letting a
 * 16-byte header claim millions.
 */
export const P11_ATTRIBUTES_MAX = 1024;

/** Items of a ulong array or ulong buffer (au, fu: slot lists, mechanism lists, found objects). */
export const P11_ULONG_ITEMS_MAX = 65_536;

/**
 * Nesting of attribute templates (CKA_WRAP_TEMPLATE inside a template …): p11-kit's own limit,
 * P11_RPC_MAX_RECURSION_DEPTH in rpc-message.h.
 */
export const P11_TEMPLATE_DEPTH_MAX = 8;

/** A handshake that does not deliver its version byte within this closes the connection. */
export const P11_HANDSHAKE_TIMEOUT_MS = 10_000;

/** A frame begun must be whole within this, or the connection is closed (a stalled or slow writer). */
export const P11_PARTIAL_FRAME_TIMEOUT_MS = 30_000;

/**
 * Connections at once. p11-kit's client keeps one socket per process (per C_Initialize) for the
 * process's life, so idle connections are normal and are not timed out; this caps what they can hold
 * (each at most one frame, P11_FRAME_BODY_BYTES_MAX, plus one answer).
 */
export const P11_CONNECTIONS_MAX = 256;

/**
 * Unsent answer bytes over which the bridge stops reading from that client until they drain: one
 * request is served at a time per connection, so a client that does not read its answers stalls
 * only itself.
 */
export const P11_PENDING_OUTPUT_BYTES_MAX = P11_FRAME_BODY_BYTES_MAX;
/** Calls of one connection served at once. p11-kit's client sends the calls of an application's
 * threads over its one socket, each with its own call code, and matches the answers by that code,
 * so they may finish in any order; past this the bridge stops reading until one is answered. */
export const P11_CALLS_IN_FLIGHT_MAX = 16;
