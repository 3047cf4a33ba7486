// The one door for every change of device state (docs/architecture.md §5, §10; docs/device.md
// "State changes"). Operations elsewhere in the device decide against the current state and hand a
// change set (formats/change_set.ts) to `submit`; the change sets are applied one at a time, in the
// order submitted (one writer per device: the store is synchronous, a journal append will not be),
// by `apply`, which commits every durable write of a change set in ONE store transaction, then tells
// the in-memory indexes (views) what changed. Nothing else opens a store transaction; the only other
// writers are `replace` (zeroise) and `replaceStaged` (restore), which swap the whole state through
// the same queue.
//
// apply decides nothing: it writes the bytes it is given and advances the state position (a count
// and a hash chain of the cluster-wide change sets applied). It holds no clock and no randomness,
// so two devices that start from one backup and apply the same change sets in the same order end
// with identical records — what the cluster journal relies on (test/hsm/state/determinism.test.ts).
//
// Namespaces: 'device' holds this device's own identity and commissioning (local, durable, never in
// a backup); 'session-object' is volatile (local, memory only: session objects die with the
// process); 'state' is apply's own (the state position); every other namespace is cluster-wide.

import { assert } from '../../assert.js';
import { CofferError } from '../../errors.js';
import {
  INITIAL_STATE_POSITION, STATE_NAMESPACE, STATE_POSITION_ID, decodeStatePosition, encodeChangeSet, encodeStatePosition, nextStatePosition, wipeChangeSet,
  type ChangeSet, type RecordOp, type StatePosition,
} from '../../formats/change_set.js';
import { STATE_QUEUE_MAX } from '../../formats/limits.js';
import { OBJECT_CONFIG_NAMESPACE, OBJECT_NAMESPACE } from '../../formats/object_record.js';
import { MemoryRecordStore, type RecordStaging, type RecordStore, type RecordTx } from '../store/store_port.js';

/** The device's own identity and commissioning: durable, local, never backed up. */
export const DEVICE_NAMESPACE = 'device';
/** Session objects: local and in memory only. */
export const SESSION_OBJECT_NAMESPACE = 'session-object';
const VOLATILE = new Set([SESSION_OBJECT_NAMESPACE]);
const LOCAL = new Set([DEVICE_NAMESPACE, SESSION_OBJECT_NAMESPACE]);
/** What the object lineage follows: the key objects and their handle counter. */
const OBJECT_NAMESPACES = new Set([OBJECT_NAMESPACE, OBJECT_CONFIG_NAMESPACE]);

/** Read access to the state, as the deciding code sees it. */
export interface StateReader {
  get(ns: string, id: string): Uint8Array | undefined;
  list(ns: string): IterableIterator<[string, Uint8Array]>;
  count(ns: string): number;
}

/** An in-memory index over some namespaces, told of every record op after it committed. */
export interface StateView {
  readonly namespaces: readonly string[];
  applied(op: RecordOp): void;
}

/** What a committed change set did, without its values: for logs (kind, scope, which records). */
export interface ChangeSummary {
  readonly kind: ChangeSet['kind'];
  readonly scope: ChangeSet['scope'];
  readonly ops: readonly { readonly op: RecordOp['op']; readonly ns: string; readonly id: string }[];
}

/** What an operation decided: the change sets to apply (in order; none when nothing changes) and
 * what the caller gets back once they are applied. */
export interface Decision<T> {
  readonly changes: readonly ChangeSet[];
  readonly result: T;
}

export class DeviceState implements StateReader {
  readonly #store: RecordStore;
  readonly #volatile = new MemoryRecordStore();
  readonly #views = new Set<StateView>();
  readonly #observers = new Set<(encoded: Uint8Array) => void>();
  #position: StatePosition;
  /** The tail of the writer queue, and how many writes wait in it. */
  #tail: Promise<unknown> = Promise.resolve();
  #waiting = 0;

  readonly #onChange: ((summary: ChangeSummary) => void) | undefined;

  /** `onChange` hears what each committed change set did (never its values): the device's log. */
  constructor(store: RecordStore, onChange?: (summary: ChangeSummary) => void) {
    this.#store = store;
    this.#onChange = onChange;
    this.#position = this.#readPosition();
  }

  /** The store underneath, for what reads records wholesale (backups, digests). Never for writes. */
  get store(): RecordStore {
    return this.#store;
  }

  get(ns: string, id: string): Uint8Array | undefined {
    return VOLATILE.has(ns) ? this.#volatile.get(ns, id) : this.#store.get(ns, id);
  }

  list(ns: string): IterableIterator<[string, Uint8Array]> {
    return VOLATILE.has(ns) ? this.#volatile.list(ns) : this.#store.list(ns);
  }

  count(ns: string): number {
    return VOLATILE.has(ns) ? this.#volatile.count(ns) : this.#store.count(ns);
  }

  /** The cluster-wide change sets applied so far (their count and hash chain). */
  position(): StatePosition {
    const p = this.#position;
    return { position: p.position, lineage: p.lineage.slice(), objectLineage: p.objectLineage.slice() };
  }

  /**
   * Hears the encoding of every cluster-wide change set as it is applied (what a journal entry will
   * carry). The bytes hold key material: the observer owns them and wipes them. Returns the
   * function that stops it.
   */
  observe(observer: (encoded: Uint8Array) => void): () => void {
    this.#observers.add(observer);
    return () => void this.#observers.delete(observer);
  }

  /** Registers an index; returns the function that unregisters it. */
  watch(view: StateView): () => void {
    this.#views.add(view);
    return () => void this.#views.delete(view);
  }

  /**
   * Queues `decide`: when every earlier write has finished, it runs against the state as it then
   * is, its change sets are applied, and its result is returned. A decision that throws changes
   * nothing. At most STATE_QUEUE_MAX writes wait (COFFER_DEVICE_BUSY beyond).
   */
  submit<T>(decide: () => Decision<T>): Promise<T> {
    return this.#enqueue(() => {
      const decision = decide();
      for (const cs of decision.changes) this.apply(cs);
      return decision.result;
    });
  }

  /**
   * Replaces the state wholesale (restore, zeroise), in the writer queue: `write` runs inside one
   * store transaction (it may clear namespaces and put records, never 'device' or 'state' unless it
   * restores them), the volatile namespaces are emptied, the position is read again, and `after`
   * runs (the caller rebuilds its indexes) before the next write starts.
   */
  replace<T>(write: (tx: RecordTx) => T, after: () => void): Promise<T> {
    return this.#enqueue(() => {
      const result = this.#store.transaction(write);
      this.#replaced(after);
      return result;
    });
  }

  /**
   * Replaces the state wholesale from records written aside first (restore), in the writer queue:
   * `stage` fills a staging area of the store (its own bounded transactions, which no read sees),
   * then ONE short transaction runs `write` (it clears what the new state does not keep, never
   * 'device') and adopts the staged records, each staged namespace replacing the live one; then
   * as `replace`. A failure before that transaction commits (in `stage`, in `write`, a crash) leaves
   * the state as it was, and the staging is dropped whatever happens.
   */
  replaceStaged<T>(stage: (staging: RecordStaging) => T, write: (tx: RecordTx) => void, after: () => void): Promise<T> {
    return this.#enqueue(() => {
      const staging = this.#store.stage();
      let result: T;
      try {
        result = stage(staging);
        this.#store.transaction((tx) => {
          write(tx);
          tx.adopt(staging);
        });
      } finally {
        staging.discard();
      }
      this.#replaced(after);
      return result;
    });
  }

  /**
   * Commits one change set: its durable writes in one store transaction (with the advanced state
   * position, for a cluster-wide one), its volatile writes in memory, then every view hears of each
   * op in order. Deterministic: no clock, no randomness. Takes ownership of the values and wipes
   * them once written. Callers go through `submit`; tests call it directly to replay change sets.
   */
  apply(cs: ChangeSet): void {
    try {
      checkScope(cs);
      const durable = cs.ops.filter((op) => !VOLATILE.has(op.ns));
      const volatile = cs.ops.filter((op) => VOLATILE.has(op.ns));
      let next: StatePosition | undefined;
      let encoded: Uint8Array | undefined;
      if (cs.scope === 'cluster') {
        encoded = encodeChangeSet(cs);
        next = nextStatePosition(this.#position, encoded, cs.ops.some((op) => OBJECT_NAMESPACES.has(op.ns)));
      }
      if (durable.length > 0 || next !== undefined) {
        const position = next;
        this.#store.transaction((tx) => {
          writeOps(tx, durable);
          if (position !== undefined) tx.put(STATE_NAMESPACE, STATE_POSITION_ID, encodeStatePosition(position));
        });
      }
      if (volatile.length > 0) this.#volatile.transaction((tx) => writeOps(tx, volatile));
      if (next !== undefined) this.#position = next;
      for (const op of cs.ops) for (const view of this.#views) if (view.namespaces.includes(op.ns)) view.applied(op);
      if (encoded !== undefined) this.#tell(encoded);
      this.#onChange?.({ kind: cs.kind, scope: cs.scope, ops: cs.ops.map(({ op, ns, id }) => ({ op, ns, id })) });
    } finally {
      wipeChangeSet(cs);
    }
  }

  /** After a wholesale replacement: volatile namespaces emptied, the position read again, `after` run. */
  #replaced(after: () => void): void {
    for (const ns of VOLATILE) this.#volatile.transaction((tx) => tx.clear(ns));
    this.#position = this.#readPosition();
    after();
  }

  #tell(encoded: Uint8Array): void {
    for (const observer of this.#observers) observer(encoded.slice());
    encoded.fill(0);
  }

  #enqueue<T>(run: () => T): Promise<T> {
    if (this.#waiting >= STATE_QUEUE_MAX) return Promise.reject(new CofferError('COFFER_DEVICE_BUSY', { max: STATE_QUEUE_MAX }));
    this.#waiting++;
    const turn = this.#tail.then(() => {
      this.#waiting--;
      return run();
    });
    this.#tail = turn.catch(() => undefined);
    return turn;
  }

  #readPosition(): StatePosition {
    const bytes = this.#store.get(STATE_NAMESPACE, STATE_POSITION_ID);
    return bytes === undefined ? INITIAL_STATE_POSITION : decodeStatePosition(bytes);
  }
}

/** Cluster-wide change sets never touch local namespaces; local ones touch nothing else; nobody but
 * apply writes the state position. A violation is a bug in the deciding code. */
function checkScope(cs: ChangeSet): void {
  assert(cs.ops.length > 0, 'a change set changes something');
  for (const op of cs.ops) {
    assert(op.ns !== STATE_NAMESPACE, 'only apply writes the state position');
    assert(LOCAL.has(op.ns) === (cs.scope === 'local'), `namespace ${op.ns} in a ${cs.scope} change set`);
  }
}

function writeOps(tx: RecordTx, ops: readonly RecordOp[]): void {
  for (const op of ops) {
    if (op.op === 'put') tx.put(op.ns, op.id, op.value);
    else tx.delete(op.ns, op.id);
  }
}
