// The object table's compact index and its parts: the index gives back exactly the records it was
// given (re-encoded byte for byte), a removed or replaced object's bytes are zeroised at once,
// close() zeroises every buffer that held key material or an identity, the arena keeps its content
// through churn and gives space back, the handle map agrees with a Map, and the key cache keeps
// the keys used lately.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { SecretBytes } from '../../../src/crypto/secret_bytes.js';
import {
  BOOLEAN_ATTRIBUTE_NAMES, encodeObjectRecord, objectIdentity, readObjectRecordLayout, type BooleanAttributeName, type ObjectRecord,
} from '../../../src/formats/object_record.js';
import { OBJECT_ARENA_CHUNK_BYTES } from '../../../src/formats/limits.js';
import { HandleMap } from '../../../src/hsm/objects/handle_map.js';
import { KeyCache } from '../../../src/hsm/objects/key_cache.js';
import { ObjectIndex, labelQuery } from '../../../src/hsm/objects/object_index.js';
import { SecretArena } from '../../../src/hsm/objects/secret_arena.js';
import { generateSecretKey } from '../../../src/hsm/mechanisms/mechanisms.js';
import { mulberry32 } from '../../helpers.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function attrs(on: readonly BooleanAttributeName[]): Record<BooleanAttributeName, boolean> {
  return Object.fromEntries(BOOLEAN_ATTRIBUTE_NAMES.map((n) => [n, on.includes(n)])) as Record<BooleanAttributeName, boolean>;
}

const EC_PAIR = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const EC_PRIVATE = new Uint8Array(EC_PAIR.privateKey.export({ type: 'pkcs8', format: 'der' }));
const EC_PUBLIC = new Uint8Array(EC_PAIR.publicKey.export({ type: 'spki', format: 'der' }));

/** A record of one of several shapes, its material filled with `fill`. */
function record(handle: number, shape: number, fill: number, owner = 'alice'): ObjectRecord {
  const base = { handle, manageKeyQuorum: 0, useKeyQuorum: 0, owner, sharees: [] as string[], id: new Uint8Array(0), kcv: Uint8Array.of(1, 2, 3) };
  switch (shape % 4) {
    case 0:
      return { ...base, class: 'SECRET_KEY', keyType: 'AES', bits: 256, attributes: attrs(['token', 'sensitive', 'encrypt', 'decrypt']), label: `key-${handle}`, material: SecretBytes.copyOf(new Uint8Array(32).fill(fill)) };
    case 1:
      return {
        ...base, class: 'SECRET_KEY', keyType: 'GENERIC_SECRET', bits: 8 * 48, attributes: attrs(['token', 'sign', 'verify', 'modifiable']), label: '\ufeffclé ✓ 🔑',
        id: Uint8Array.of(9, 8, 7), sharees: ['bob', 'carol'], manageKeyQuorum: 2, useKeyQuorum: 8, material: SecretBytes.copyOf(new Uint8Array(48).fill(fill)),
      };
    case 2:
      return { ...base, class: 'PUBLIC_KEY', keyType: 'EC', curve: 'P-256', bits: 256, attributes: attrs(['token', 'verify']), label: '', kcv: new Uint8Array(0), material: SecretBytes.copyOf(EC_PUBLIC) };
    default:
      return { ...base, class: 'PRIVATE_KEY', keyType: 'EC', curve: 'P-256', bits: 256, attributes: attrs(['sign', 'sensitive']), label: 'session-private', sharees: ['dave'], material: SecretBytes.copyOf(EC_PRIVATE) };
  }
}

function put(index: ObjectIndex, r: ObjectRecord): { slot: number; bytes: Uint8Array } {
  const bytes = encodeObjectRecord(r);
  r.material.destroy();
  return { slot: index.put(readObjectRecordLayout(bytes), bytes), bytes };
}

/** The index's object at `handle`, encoded again: equal to the bytes it was given, or it lost something. */
function reencoded(index: ObjectIndex, handle: number): string {
  const r = index.record(index.slotOf(handle));
  try {
    return hex(encodeObjectRecord(r));
  } finally {
    r.material.destroy();
  }
}

/** How many times `needle` occurs in the buffers. */
function occurrences(buffers: readonly Uint8Array[], needle: Uint8Array): number {
  let n = 0;
  for (const b of buffers) {
    const haystack = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    for (let at = haystack.indexOf(needle); at >= 0; at = haystack.indexOf(needle, at + 1)) n++;
  }
  return n;
}

void test('the index gives back exactly the records it was given, field by field and byte for byte', () => {
  const index = new ObjectIndex();
  const given = new Map<number, string>();
  for (let h = 1; h <= 8; h++) given.set(h, hex(put(index, record(h, h, h)).bytes));
  assert.equal(index.size, 8);
  assert.equal(index.tokenCount, 6, 'the shape-3 records are session objects (token=false)');
  for (const [handle, bytes] of given) assert.equal(reencoded(index, handle), bytes, `handle ${handle}`);
  const slot = index.slotOf(5); // shape 1: a generic secret with everything set
  assert.deepEqual(
    [index.cls(slot), index.keyType(slot), index.curve(slot), index.bits(slot), index.owner(slot), index.sharees(slot), index.label(slot), hex(index.id(slot))],
    ['SECRET_KEY', 'GENERIC_SECRET', undefined, 384, 'alice', ['bob', 'carol'], '\ufeffclé ✓ 🔑', '090807'],
  );
  assert.deepEqual([index.manageKeyQuorum(slot), index.useKeyQuorum(slot), index.has(slot, 'sign'), index.has(slot, 'encrypt')], [2, 8, true, false]);
  assert.ok(index.isSharee(slot, 'carol') && !index.isSharee(slot, 'alice') && !index.isSharee(slot, 'mallory'));
  assert.ok(index.labelIs(slot, labelQuery('\ufeffclé ✓ 🔑')) && !index.labelIs(slot, labelQuery('clé ✓ 🔑')));
  const same = record(5, 1, 5);
  assert.equal(hex(index.identity(slot)), hex(objectIdentity(same)));
  same.material.destroy();
  assert.equal(index.slotOf(99), -1);
});

void test('replacing an object keeps its slot and names; removing it frees its names and slot', () => {
  const index = new ObjectIndex();
  const { slot } = put(index, record(5, 1, 0x11));
  put(index, { ...record(5, 1, 0x11, 'erin'), sharees: ['frank'] });
  assert.equal(index.slotOf(5), slot);
  assert.deepEqual([index.owner(slot), index.sharees(slot), index.isSharee(slot, 'bob')], ['erin', ['frank'], false]);
  index.remove(5);
  assert.deepEqual([index.size, index.slotOf(5)], [0, -1]);
  assert.equal(put(index, record(6, 0, 0x12)).slot, slot, 'a freed slot is used again');
});

void test('a removed or replaced object\'s key material is zeroised in the arena at once', () => {
  const index = new ObjectIndex();
  const secret = new Uint8Array(32).fill(0xa5);
  put(index, record(1, 0, 0xa5));
  put(index, record(2, 0, 0x5a));
  assert.equal(occurrences(index.secretBuffersForTest(), secret), 1);
  index.remove(1);
  assert.equal(occurrences(index.secretBuffersForTest(), secret), 0, 'removed: no copy of the key remains');
  put(index, record(3, 0, 0xa5));
  put(index, record(3, 0, 0x33)); // the same handle, another key
  assert.equal(occurrences(index.secretBuffersForTest(), secret), 0, 'replaced: the old key is gone');
  assert.equal(occurrences(index.secretBuffersForTest(), new Uint8Array(32).fill(0x5a)), 1);
});

void test('close() zeroises every buffer that held key material or an identity, and empties the index', () => {
  const index = new ObjectIndex();
  for (let h = 1; h <= 3000; h++) put(index, record(h, h, (h % 250) + 1));
  for (let h = 1; h <= 3000; h += 7) index.identity(index.slotOf(h));
  const buffers = index.secretBuffersForTest();
  assert.ok(buffers.length > 2 && buffers.every((b) => b.some((x) => x !== 0)), 'the buffers held something');
  index.close();
  for (const b of buffers) assert.ok(b.every((x) => x === 0), 'every byte zero');
  assert.deepEqual([index.size, index.tokenCount, index.slotOf(1)], [0, 0, -1]);
  put(index, record(1, 0, 1));
  assert.equal(index.size, 1, 'usable again after close');
});

void test('churn: random puts, replacements and removals keep every survivor intact, and the arena gives space back', () => {
  const seed = Date.now() % 100_000;
  const random = mulberry32(seed);
  const index = new ObjectIndex();
  const model = new Map<number, string>();
  for (let step = 0; step < 20_000; step++) {
    const handle = 1 + Math.floor(random() * 3000);
    if (random() < 0.4 && model.has(handle)) {
      index.remove(handle);
      model.delete(handle);
    } else {
      model.set(handle, hex(put(index, record(handle, Math.floor(random() * 4), 1 + (step % 250))).bytes));
    }
  }
  assert.equal(index.size, model.size, `seed ${seed}`);
  for (const [handle, bytes] of model) assert.equal(reencoded(index, handle), bytes, `seed ${seed}, handle ${handle}`);
  const full = index.heldBytes;
  for (const handle of [...model.keys()].slice(0, Math.floor(model.size * 0.9))) {
    index.remove(handle);
    model.delete(handle);
  }
  assert.ok(index.heldBytes < full, `seed ${seed}: emptied chunks are dropped (${index.heldBytes} < ${full})`);
  for (const [handle, bytes] of model) assert.equal(reencoded(index, handle), bytes, `seed ${seed}, after evacuations, handle ${handle}`);
});

void test('arena: a sparse chunk is evacuated (its live regions move, their owner hears where) and dropped', () => {
  const where = new Map<number, number>(); // owner → its region now
  const moved = new Set<number>();
  const arena = new SecretArena((owner, ref) => {
    where.set(owner, ref);
    moved.add(owner);
  });
  const payload = 1000;
  let owners = 0;
  while (Math.floor((where.get(owners - 1) ?? 0) / OBJECT_ARENA_CHUNK_BYTES) < 2) {
    const ref = arena.alloc(payload, owners);
    arena.bytes(ref).fill(owners % 251);
    where.set(owners++, ref);
  }
  const inChunk0 = [...where].filter(([, ref]) => ref < OBJECT_ARENA_CHUNK_BYTES).map(([owner]) => owner);
  const survivor = inChunk0.pop() ?? -1;
  for (const owner of inChunk0) arena.free(where.get(owner) ?? -1); // every region of chunk 0 but one
  const now = where.get(survivor) ?? -1;
  assert.ok(moved.has(survivor) && now >= OBJECT_ARENA_CHUNK_BYTES, 'the survivor moved out of chunk 0');
  assert.ok(arena.bytes(now).every((x) => x === survivor % 251), 'with its content');
  assert.equal(arena.liveBytes, (owners - inChunk0.length) * (payload + 8));
  assert.equal(arena.buffersForTest().length, 2, 'chunk 0 dropped');
  assert.match(JSON.stringify({ arena }), /redacted/);
});

void test('handle map: agrees with a Map through random sets and deletes, handles past 2^32 included', () => {
  const seed = Date.now() % 100_000;
  const random = mulberry32(seed);
  const handles = new Float64Array(60_000);
  let slots = 0;
  const map = new HandleMap(handles);
  const model = new Map<number, number>();
  const pick = (): number => {
    const r = random();
    if (r < 0.6) return 1 + Math.floor(random() * 5000);
    if (r < 0.8) return 2 ** 40 + Math.floor(random() * 500); // session handles
    return 2 ** 53 - 1 - Math.floor(random() * 500);
  };
  for (let step = 0; step < 60_000; step++) {
    const handle = pick();
    const slot = model.get(handle);
    if (slot !== undefined && random() < 0.5) {
      map.delete(handle);
      model.delete(handle);
    } else if (slot === undefined) {
      handles[slots] = handle;
      map.set(handle, slots);
      model.set(handle, slots++);
    }
    if (step % 997 !== 0) continue;
    for (let i = 0; i < 50; i++) {
      const h = pick();
      assert.equal(map.get(h), model.get(h) ?? -1, `seed ${seed} step ${step}`);
    }
  }
  assert.equal(map.size, model.size);
  for (const [handle, slot] of model) assert.equal(map.get(handle), slot, `seed ${seed}`);
});

void test('key cache: at most its bound; a key used since it came round gets a second chance', () => {
  const cache = new KeyCache(3);
  const key = (): ReturnType<typeof generateSecretKey> => generateSecretKey({ keyType: 'AES', bits: 128 });
  const [a, b, c, d] = [key(), key(), key(), key()];
  cache.set(1, a);
  cache.set(2, b);
  cache.set(3, c);
  assert.equal(cache.get(1), a); // 1 is used: it survives the next eviction
  cache.set(4, d);
  assert.equal(cache.size, 3);
  assert.deepEqual([cache.get(1), cache.get(2), cache.get(3), cache.get(4)], [a, undefined, c, d]);
  cache.delete(3);
  assert.deepEqual([cache.size, cache.get(3)], [2, undefined]);
  cache.clear();
  assert.equal(cache.size, 0);
});
