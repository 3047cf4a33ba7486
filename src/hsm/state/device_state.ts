// The one door for every change of device state (docs/architecture.md §5, §10; docs/device.md
// "State changes"). Operations elsewhere in the device decide against the current state and hand a
// change set (formats/change_set.ts) to `submit`; the change sets are applied one at a time, in the
// order submitted (one writer per device), by `apply`, which commits every durable write of a change
// set in ONE store transaction, then tells the in-memory indexes (views) what changed. Nothing else
// opens a store transaction; the only other writers are `replace` (zeroise) and `replaceStaged`
// (restore), which swap the whole state through the same queue.
//
// apply decides nothing: it writes the bytes it is given and advances the state position (a count
// and a hash chain of the cluster-wide change sets applied, and the journal head). It holds no clock
// and no randomness, so two devices that start from one backup and apply the same change sets in the
// same order end with identical records (test/hsm/state/determinism.test.ts).
//
// The cluster journal (journal.ts, docs/device.md "The journal"). Once the state holds a cluster
// sync key, a decision's cluster-wide change sets are not applied by `submit` directly: they go, as
// ONE entry (several are concatenated into one change set of the first one's kind), to the
// sequencer, which seals the entry and settles when the journal's entry at its position has been
// applied — through `applyJournalEntry`, the same commit with the journal head advanced in the same
// transaction. If it was this entry, the decisions' local change sets are applied right after it and
// their results returned; if another HSM's entry took the position, they are made again on the new
// state (each at most JOURNAL_DECIDE_ATTEMPTS_MAX times). The writer queue is held while an entry is
// in flight (one entry at a time per device); delivered entries are applied outside the queue,
// synchronously, which is safe because every queued step is synchronous except that wait, so a
// delivery never interleaves with a decision or an apply.
//
// Batches: one entry carries every submit waiting at the head of the queue when the writer takes its
// turn (up to JOURNAL_BATCH_DECISIONS_MAX, within one change set's limits), so a round trip to the
// journal orders them all. A later decision is decided against the state the earlier ones leave: the
// earlier ones' change sets are applied to a speculation — an overlay that get/list/count read
// through, and the views told of each op as apply tells them — never to the store. The speculation
// lives only while the batch's decisions run, synchronously: it is ended (each op reverted in the
// views, last first) before the entry is proposed, so nothing else ever reads it. The entry that takes
// the batch's position is then applied as on every HSM, so the store only ever holds journal entries
// and apply stays the one deterministic door. Only a decision that says it reads nothing else (`batchable`) is
// decided on top of another; one that is not is put back, abandoned as 'superseded', and decided
// again on the next turn. A decision that throws fails its own caller only.
//
// Decisions must therefore be safe to run again: a decider keeps its effects outside the returned
// change sets (counters in memory, quorum tokens) out of the decision itself and registers them with
// `afterDecision`: `committed` runs right after the decision's change sets took effect (before the
// next write), `abandoned` when they will not, or may not ('unknown') — and never both.
//
// Namespaces: 'device' holds this device's own identity and commissioning (local, durable, never in
// a backup); 'session-object' is volatile (local, memory only: session objects die with the
// process); 'state' is apply's own (the state position); every other namespace is cluster-wide.

import { AsyncResource } from 'node:async_hooks';

import { assert } from '../../assert.js';
import { CofferError, fail, isCofferError } from '../../errors.js';
import {
  INITIAL_STATE_POSITION, STATE_NAMESPACE, STATE_POSITION_ID, changeSetBytes, decodeStatePosition, encodeChangeSet, encodeStatePosition, nextStatePosition, wipeChangeSet,
  type ChangeSet, type JournalHead, type RecordOp, type StatePosition,
} from '../../formats/change_set.js';
import { CHANGE_SET_BYTES_MAX, CHANGE_SET_OPS_MAX, JOURNAL_BATCH_DECISIONS_MAX, JOURNAL_DECIDE_ATTEMPTS_MAX, STATE_QUEUE_MAX } from '../../formats/limits.js';
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
  /** The decision starts a new journal (a cluster created from a backup, docs/device.md "The
   * journal"): its one cluster-wide change set is applied directly, never as an entry (it makes the
   * key the new journal is sealed under), and the journal head goes back to (0, genesis) in the same
   * transaction. The sequencer then forgets the journal it followed. */
  readonly startsJournal?: boolean;
  /** Later decisions may be decided on top of this one before its entry is ordered (docs/device.md
   * "The journal", batches): it reads the state only through the StateReader and the views apply
   * tells, its hooks change nothing a later decision reads, and all its change sets are
   * cluster-wide. Undefined: it is ordered in an entry of its own. */
  readonly batchable?: boolean;
}

/** Why a decision's change sets did not take effect: the decision or its apply threw, or its entry
 * was certainly not appended ('refused'); another HSM's entry took its journal position and it is
 * decided again ('superseded'); its entry was handed to the journal but its fate is not known
 * ('unknown': it may still be applied later, as any entry is). */
export type AbandonReason = 'refused' | 'superseded' | 'unknown';

/** Effects of a decision outside its change sets, registered while it runs (`afterDecision`). */
export interface DecisionHooks {
  /** Runs once the decision's change sets took effect, before the next write starts. */
  readonly committed?: () => void;
  /** Runs once they will not (or may not) take effect as decided. */
  readonly abandoned?: (reason: AbandonReason) => void;
}

/**
 * What orders cluster-wide change sets when the cluster has a journal (journal.ts implements it).
 * `propose` seals `cs` (its values stay the caller's) as the entry after the journal head and
 * settles once the journal's entry at that position has been applied: 'own' when it was this entry
 * (`onOwn` has then run with its position, synchronously, right after it was applied; it does not
 * throw), 'other' when another entry
 * took the position. It rejects with COFFER_JOURNAL_NOT_APPENDED (withdrawn: not in the journal),
 * COFFER_JOURNAL_OUTCOME_UNKNOWN or COFFER_JOURNAL_HALTED.
 */
export interface StateSequencer {
  /** True when cluster-wide change sets go through the journal: the state holds a sync key. */
  journaled(): boolean;
  propose(cs: ChangeSet, onOwn: (head: JournalHead) => void): Promise<'own' | 'other'>;
  /** Where the caller running now collects the positions of the entries applied as its own (asked
   * when it submits; the entry may be proposed from another caller's turn). */
  ownEntrySink(): ((head: JournalHead) => void) | undefined;
  /** The state was replaced wholesale (restore, zeroise), or a new journal started: the head was read again. */
  replaced(): void;
}

/** A submit waiting in the writer queue. */
interface Submitted {
  readonly decide: () => Decision<unknown>;
  readonly resolve: (result: unknown) => void;
  readonly reject: (e: unknown) => void;
  /** Runs a function in the async context of the caller that submitted (its decision runs there). */
  readonly inCaller: <R>(f: () => R) => R;
  /** Where the caller collects the positions of its own applied entries. */
  readonly sink: ((head: JournalHead) => void) | undefined;
  /** Times it was decided and its entry proposed (JOURNAL_DECIDE_ATTEMPTS_MAX). */
  attempts: number;
}

/** A wholesale replacement waiting in the writer queue: synchronous, it settles its own caller. */
interface Write {
  readonly write: () => void;
}

/** A decided submit in a batch; `failure`: its local change sets failed to apply after its entry did. */
interface Member {
  readonly sub: Submitted;
  readonly decision: Decision<unknown>;
  readonly hooks: DecisionHooks[];
  failure: { readonly error: unknown } | undefined;
}

/** The batch's earlier decisions as later ones see them: what they wrote (null: deleted; values are
 * copies), each op with the value it replaced (for the views, when they are told it is undone), and
 * the change in each namespace's count. */
interface Speculation {
  readonly overlay: Map<string, Map<string, Uint8Array | null>>;
  readonly undo: { readonly ns: string; readonly id: string; readonly prior: Uint8Array | undefined }[];
  readonly counts: Map<string, number>;
}

export class DeviceState implements StateReader {
  readonly #store: RecordStore;
  readonly #volatile = new MemoryRecordStore();
  readonly #views = new Set<StateView>();
  readonly #observers = new Set<(encoded: Uint8Array) => void>();
  #position: StatePosition;
  #sequencer: StateSequencer | undefined;
  /** The hooks of the decision running now (undefined outside a decision). */
  #deciding: DecisionHooks[] | undefined;
  /** The writes waiting for the one writer, in order, and whether it runs. */
  readonly #queue: (Submitted | Write)[] = [];
  #draining = false;
  /** While a batch is decided and its entry in flight: what its decisions wrote, as later ones read it. */
  #speculation: Speculation | undefined;

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
    const speculated = this.#speculation?.overlay.get(ns)?.get(id);
    if (speculated !== undefined) return speculated === null ? undefined : speculated.slice();
    return VOLATILE.has(ns) ? this.#volatile.get(ns, id) : this.#store.get(ns, id);
  }

  list(ns: string): IterableIterator<[string, Uint8Array]> {
    const base = VOLATILE.has(ns) ? this.#volatile.list(ns) : this.#store.list(ns);
    const over = this.#speculation?.overlay.get(ns);
    return over === undefined ? base : overlaid(base, over);
  }

  count(ns: string): number {
    const base = VOLATILE.has(ns) ? this.#volatile.count(ns) : this.#store.count(ns);
    return base + (this.#speculation?.counts.get(ns) ?? 0);
  }

  /** The cluster-wide change sets applied so far (their count and hash chain) and the journal head. */
  position(): StatePosition {
    const p = this.#position;
    return { position: p.position, lineage: p.lineage.slice(), objectLineage: p.objectLineage.slice(), journal: { seq: p.journal.seq, hash: p.journal.hash.slice() } };
  }

  /** The journal head as stored (seq 0: zero hash, for the genesis). */
  journalHead(): JournalHead {
    return { seq: this.#position.journal.seq, hash: this.#position.journal.hash.slice() };
  }

  /** Connects the journal (once, when the device opens). */
  attachSequencer(sequencer: StateSequencer): void {
    assert(this.#sequencer === undefined, 'one sequencer per device state');
    this.#sequencer = sequencer;
  }

  /** True while a decision runs (inside `submit`'s decide). */
  get deciding(): boolean {
    return this.#deciding !== undefined;
  }

  /** Registers effects of the decision running now that lie outside its change sets (module header). */
  afterDecision(hooks: DecisionHooks): void {
    assert(this.#deciding !== undefined, 'afterDecision is called while a decision runs');
    this.#deciding.push(hooks);
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
   * is, its change sets are applied (cluster-wide ones through the journal when the cluster has one:
   * module header), and its result is returned. A decision that throws changes nothing. At most
   * STATE_QUEUE_MAX writes wait (COFFER_DEVICE_BUSY beyond).
   */
  submit<T>(decide: () => Decision<T>): Promise<T> {
    if (this.#queue.length >= STATE_QUEUE_MAX) return Promise.reject(new CofferError('COFFER_DEVICE_BUSY', { max: STATE_QUEUE_MAX }));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({
        decide,
        resolve: resolve as (result: unknown) => void,
        reject,
        inCaller: inCallerOf(),
        sink: this.#sequencer?.ownEntrySink(),
        attempts: 0,
      });
      this.#kick();
    });
  }

  /** Starts the writer when it is idle, in a later microtask (a write never runs inside its caller). */
  #kick(): void {
    if (this.#draining) return;
    this.#draining = true;
    void Promise.resolve().then(() => this.#drain());
  }

  /** The one writer: runs the queue in order, a wholesale replacement alone, decisions in batches. */
  async #drain(): Promise<void> {
    try {
      for (let job = this.#queue[0]; job !== undefined; job = this.#queue[0]) {
        if ('write' in job) {
          this.#queue.shift();
          job.write();
        } else {
          await this.#decideBatch();
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  /**
   * Decides the submits at the head of the queue: each in its caller's async context, the first
   * against the state, every later one against the state as the earlier ones leave it (speculated:
   * module header). A decision that is not journaled is applied at once (only as a batch's first);
   * one that cannot join the batch is put back for the next turn. The batch's entry is then proposed.
   */
  async #decideBatch(): Promise<void> {
    const batch: Member[] = [];
    let ops = 0;
    let bytes = 0;
    for (let sub = this.#nextSubmit(); sub !== undefined && batch.length < JOURNAL_BATCH_DECISIONS_MAX; sub = this.#nextSubmit()) {
      this.#queue.shift();
      sub.attempts++;
      let decided: [Decision<unknown>, DecisionHooks[]];
      try {
        decided = sub.inCaller(() => this.#decide(sub.decide));
      } catch (e) {
        sub.reject(e); // its own failure only: nothing of it was applied or speculated
        continue;
      }
      const member: Member = { sub, decision: decided[0], hooks: decided[1], failure: undefined };
      const journaled = this.#journaled(member.decision);
      if (batch.length === 0 && !journaled) {
        this.#settleDirect(member);
        continue;
      }
      const clusterOps = member.decision.changes.flatMap((cs) => cs.ops);
      const joins = journaled && (batch.length === 0 || (this.#batchable(member.decision) && ops + clusterOps.length <= CHANGE_SET_OPS_MAX && changeSetBytes(clusterOps) + bytes <= CHANGE_SET_BYTES_MAX));
      if (!joins) {
        this.#putBack(member);
        break;
      }
      batch.push(member);
      ops += clusterOps.length;
      bytes += changeSetBytes(clusterOps);
      const next = this.#nextSubmit();
      if (next === undefined || batch.length >= JOURNAL_BATCH_DECISIONS_MAX || !this.#batchable(member.decision)) break;
      this.#speculate(member.decision.changes);
    }
    // The speculation ends with the decisions, before anything waits: no read outside them (a crypto
    // operation, a listing, a backup) ever sees a change the journal has not ordered.
    this.#rollback();
    if (batch.length > 0) await this.#order(batch);
  }

  #nextSubmit(): Submitted | undefined {
    const job = this.#queue[0];
    return job === undefined || 'write' in job ? undefined : job;
  }

  /** True when the decision's change sets go through the journal as an entry. */
  #journaled(decision: Decision<unknown>): boolean {
    const sequencer = this.#sequencer;
    return decision.startsJournal !== true && sequencer !== undefined && sequencer.journaled() && decision.changes.some((cs) => cs.scope === 'cluster');
  }

  #batchable(decision: Decision<unknown>): boolean {
    return decision.batchable === true && decision.changes.every((cs) => cs.scope === 'cluster');
  }

  /** A decision the journal does not carry: applied now (a journal's start, local or no changes). */
  #settleDirect({ sub, decision, hooks }: Member): void {
    try {
      if (decision.startsJournal === true) this.#startJournal(decision.changes, hooks);
      else this.#applyAll(decision.changes, hooks);
    } catch (e) {
      sub.reject(e);
      return;
    }
    sub.resolve(decision.result);
  }

  /** A decision made on top of a batch it cannot join: forgotten (decided again on its next turn). */
  #putBack({ sub, decision, hooks }: Member): void {
    for (const cs of decision.changes) wipeChangeSet(cs);
    settle(hooks, 'superseded');
    sub.attempts--;
    this.#queue.unshift(sub);
  }

  /**
   * Proposes the batch's cluster-wide change sets as ONE entry and settles every member by its fate:
   * its own entry — each member's local change sets applied and hooks committed, in order, then its
   * result; another entry — each decided again (front of the queue, in order); refused or unknown —
   * each fails with the sequencer's error.
   */
  async #order(batch: readonly Member[]): Promise<void> {
    const sequencer = this.#sequencer;
    assert(sequencer !== undefined, 'a journaled batch has a sequencer');
    const entry = oneClusterChange(batch.flatMap((m) => m.decision.changes));
    const locals = batch.map((m) => m.decision.changes.filter((cs) => cs.scope === 'local'));
    let outcome: 'own' | 'other';
    let ownApplied = false; // the local change sets and the hooks were then settled by #applyAll
    try {
      outcome = await sequencer.propose(entry, (head) => {
        ownApplied = true;
        batch.forEach((m, i) => this.#settleOwn(m, locals[i] ?? [], head));
      });
    } catch (e) {
      this.#rollback();
      if (!ownApplied) {
        for (const cs of locals.flat()) wipeChangeSet(cs);
        for (const m of batch) settle(m.hooks, certainlyNotAppended(e) ? 'refused' : 'unknown');
      }
      for (const m of batch) m.sub.reject(e);
      return;
    } finally {
      wipeChangeSet(entry); // sealed (or withdrawn): the entry that is applied is the one opened from the journal
    }
    assert(this.#speculation === undefined, 'the entry at the batch\'s position ended its speculation');
    if (outcome === 'own') {
      for (const m of batch) {
        if (m.failure === undefined) m.sub.resolve(m.decision.result);
        else m.sub.reject(m.failure.error);
      }
      return;
    }
    for (const cs of locals.flat()) wipeChangeSet(cs);
    for (const m of batch) settle(m.hooks, 'superseded');
    const again = batch.filter((m) => m.sub.attempts < JOURNAL_DECIDE_ATTEMPTS_MAX);
    for (const m of batch) if (m.sub.attempts >= JOURNAL_DECIDE_ATTEMPTS_MAX) m.sub.reject(new CofferError('COFFER_JOURNAL_RETRIES_EXHAUSTED', { attempts: m.sub.attempts }));
    this.#queue.unshift(...again.map((m) => m.sub));
  }

  /** One member of the batch whose entry was applied: its local change sets, its hooks, its position. */
  #settleOwn(m: Member, local: readonly ChangeSet[], head: JournalHead): void {
    try {
      this.#applyAll(local, m.hooks);
    } catch (e) {
      m.failure = { error: e };
      return;
    }
    m.sub.sink?.(head);
  }

  /** Runs one decision, collecting the hooks it registers; a decision that throws is abandoned. */
  #decide<T>(decide: () => Decision<T>): [Decision<T>, DecisionHooks[]] {
    assert(this.#deciding === undefined, 'decisions do not nest');
    const hooks: DecisionHooks[] = [];
    this.#deciding = hooks;
    try {
      return [decide(), hooks];
    } catch (e) {
      settle(hooks, 'refused');
      throw e;
    } finally {
      this.#deciding = undefined;
    }
  }

  /** Applies a decision's change sets in order, then runs its committed hooks; on a failure the
   * change sets not applied are wiped and the hooks abandoned. */
  #applyAll(changes: readonly ChangeSet[], hooks: readonly DecisionHooks[]): void {
    let next = 0;
    try {
      for (; next < changes.length; next++) this.apply(changes[next] as ChangeSet);
    } catch (e) {
      for (const cs of changes.slice(next + 1)) wipeChangeSet(cs);
      settle(hooks, 'refused');
      throw e;
    }
    for (const h of hooks) h.committed?.();
  }

  /** Applies a journal-starting decision: its one cluster-wide change set with the journal head at
   * (0, genesis), then tells the sequencer that the journal it followed is gone. */
  #startJournal(changes: readonly ChangeSet[], hooks: readonly DecisionHooks[]): void {
    const [cs] = changes;
    assert(changes.length === 1 && cs !== undefined && cs.scope === 'cluster', 'a journal starts with one cluster-wide change set');
    try {
      checkScope(cs);
      this.#commit([{ cs, head: 'genesis' }]);
    } catch (e) {
      settle(hooks, 'refused');
      throw e;
    } finally {
      wipeChangeSet(cs);
    }
    for (const h of hooks) h.committed?.();
    this.#sequencer?.replaced();
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
      assert(this.#speculation === undefined, 'nothing is applied while a batch is speculated');
      checkScope(cs);
      this.#commit([{ cs }]);
    } finally {
      wipeChangeSet(cs);
    }
  }

  /**
   * Commits the change sets of consecutive journal entries (opened and authenticated by the journal),
   * the first one right after the head, in ONE store
   * transaction with the journal head moved to the last one's: a catching-up HSM pays one durable
   * commit per group, not one per entry (docs/device.md "The journal", groups). The store ends as
   * applying them one by one would leave it; the views, the observers and onChange hear of each
   * entry in order afterwards, as if each had been applied alone. An entry comes from outside the
   * device: a change set that writes a local namespace or the state position is refused
   * (COFFER_FORMAT_MALFORMED), not asserted. A failure commits none of them. The values stay the
   * caller's.
   */
  applyJournalEntries(entries: readonly { readonly cs: ChangeSet; readonly head: JournalHead }[]): void {
    let seq = this.#position.journal.seq;
    for (const { cs, head } of entries) {
      checkJournalChangeSet(cs);
      assert(head.seq === ++seq, 'journal entries are applied in order');
    }
    // The entry at the position of the batch in flight, its own or another HSM's: what the batch
    // speculated is undone first, then the entry is applied as on every HSM.
    this.#rollback();
    this.#commit(entries);
  }

  /**
   * Commits change sets in order: their durable writes in one store transaction (with the state
   * position advanced past each cluster-wide one and, where `head` says, the journal head: the
   * applied entry's, or 'genesis', back to seq 0), their volatile writes in memory, then every view
   * hears of each op, and the observers of each change set, in order. Values stay the caller's.
   */
  #commit(changes: readonly { readonly cs: ChangeSet; readonly head?: JournalHead | 'genesis' }[]): void {
    let position = this.#position;
    let moved = false;
    const encoded: (Uint8Array | undefined)[] = [];
    for (const { cs, head } of changes) {
      if (cs.scope !== 'cluster') {
        encoded.push(undefined);
        continue;
      }
      const bytes = encodeChangeSet(cs);
      encoded.push(bytes);
      position = nextStatePosition(position, bytes, cs.ops.some((op) => OBJECT_NAMESPACES.has(op.ns)), head === 'genesis' ? undefined : head);
      // At seq 0 the head's hash is stored as zeros and stands for the (new) cluster's genesis value.
      if (head === 'genesis') position = { ...position, journal: { seq: 0n, hash: new Uint8Array(32) } };
      moved = true;
    }
    const ops = changes.flatMap(({ cs }) => cs.ops);
    const durable = ops.filter((op) => !VOLATILE.has(op.ns));
    const volatile = ops.filter((op) => VOLATILE.has(op.ns));
    if (durable.length > 0 || moved) {
      this.#store.transaction((tx) => {
        writeOps(tx, durable);
        if (moved) tx.put(STATE_NAMESPACE, STATE_POSITION_ID, encodeStatePosition(position));
      });
    }
    if (volatile.length > 0) this.#volatile.transaction((tx) => writeOps(tx, volatile));
    this.#position = position;
    changes.forEach(({ cs }, i) => {
      for (const op of cs.ops) this.#tellViews(op);
      const bytes = encoded[i];
      if (bytes !== undefined) this.#tell(bytes);
      this.#onChange?.({ kind: cs.kind, scope: cs.scope, ops: cs.ops.map(({ op, ns, id }) => ({ op, ns, id })) });
    });
  }

  /** After a wholesale replacement: volatile namespaces emptied, the position read again, `after` run. */
  #replaced(after: () => void): void {
    for (const ns of VOLATILE) this.#volatile.transaction((tx) => tx.clear(ns));
    this.#position = this.#readPosition();
    after();
    this.#sequencer?.replaced();
  }

  #tell(encoded: Uint8Array): void {
    for (const observer of this.#observers) observer(encoded.slice());
    encoded.fill(0);
  }

  /** Queues a wholesale replacement: it runs alone, between batches, in its caller's async context. */
  #enqueue<T>(run: () => T): Promise<T> {
    if (this.#queue.length >= STATE_QUEUE_MAX) return Promise.reject(new CofferError('COFFER_DEVICE_BUSY', { max: STATE_QUEUE_MAX }));
    return new Promise<T>((resolve) => {
      const inCaller = inCallerOf();
      // What `run` throws rejects the inner promise, which the caller's adopts.
      this.#queue.push({ write: () => resolve(new Promise<T>((ran) => ran(inCaller(run)))) });
      this.#kick();
    });
  }

  /**
   * Applies a batch decision's change sets to the speculation, not the store: later decisions of the
   * batch read them (get, list, count) and the views are told of each op, as apply tells them. The
   * entry that takes the batch's position ends it (`#rollback` first, then that entry is applied).
   */
  #speculate(changes: readonly ChangeSet[]): void {
    for (const cs of changes) {
      assert(cs.scope === 'cluster', 'only cluster-wide change sets are speculated');
      checkScope(cs);
    }
    const spec: Speculation = (this.#speculation ??= { overlay: new Map<string, Map<string, Uint8Array | null>>(), undo: [], counts: new Map<string, number>() });
    for (const cs of changes) {
      for (const op of cs.ops) {
        const prior = this.get(op.ns, op.id);
        spec.undo.push({ ns: op.ns, id: op.id, prior });
        let over = spec.overlay.get(op.ns);
        if (over === undefined) spec.overlay.set(op.ns, (over = new Map<string, Uint8Array | null>()));
        over.get(op.id)?.fill(0);
        over.set(op.id, op.op === 'put' ? op.value.slice() : null);
        const delta = (op.op === 'put' ? 1 : 0) - (prior === undefined ? 0 : 1);
        spec.counts.set(op.ns, (spec.counts.get(op.ns) ?? 0) + delta);
        this.#tellViews(op);
      }
    }
  }

  /** Ends the speculation: its values wiped, the views told of each op undone, last first. */
  #rollback(): void {
    const spec = this.#speculation;
    if (spec === undefined) return;
    this.#speculation = undefined;
    for (const over of spec.overlay.values()) for (const value of over.values()) value?.fill(0);
    for (const { ns, id, prior } of spec.undo.reverse()) {
      this.#tellViews(prior === undefined ? { op: 'delete', ns, id } : { op: 'put', ns, id, value: prior });
      prior?.fill(0);
    }
  }

  #tellViews(op: RecordOp): void {
    for (const view of this.#views) if (view.namespaces.includes(op.ns)) view.applied(op);
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

/** A journal entry's change set may be applied: cluster-wide, not empty, and writing neither a local
 * namespace nor the state position (else COFFER_FORMAT_MALFORMED). */
function checkJournalChangeSet(cs: ChangeSet): void {
  if (cs.scope !== 'cluster' || cs.ops.length === 0 || cs.ops.some((op) => op.ns === STATE_NAMESPACE || LOCAL.has(op.ns))) {
    fail('COFFER_FORMAT_MALFORMED', { format: 'journal entry', field: 'namespace' });
  }
}

/** Runs every hook's `abandoned` (hooks only undo bookkeeping in memory: they do not throw). */
function settle(hooks: readonly DecisionHooks[], reason: AbandonReason): void {
  for (const h of hooks) h.abandoned?.(reason);
}

/** The sequencer's refusal says the entry is not in the journal: withdrawn before the relay took
 * it, or never sealed (the journal was halted, or sealing refused it). */
function certainlyNotAppended(e: unknown): boolean {
  if (isCofferError(e, 'COFFER_JOURNAL_NOT_APPENDED')) return true;
  if (isCofferError(e, 'COFFER_JOURNAL_HALTED')) return e.detail['sealed'] === false;
  return isCofferError(e) && !isCofferError(e, 'COFFER_JOURNAL_OUTCOME_UNKNOWN');
}

/**
 * A batch's cluster-wide change sets as the one its entry carries: their ops in the order decided,
 * each record once — a record that later decisions write again (every key generation writes the
 * handle counter) keeps its place and takes its last op. The store and the views end as the ops in
 * full would leave them, and every HSM applies the same list; what is dropped is wiped.
 */
function oneClusterChange(changes: readonly ChangeSet[]): ChangeSet {
  const cluster = changes.filter((cs) => cs.scope === 'cluster');
  const [first] = cluster;
  assert(first !== undefined, 'a journaled decision has a cluster-wide change set');
  if (cluster.length === 1) return first;
  const ops: RecordOp[] = [];
  const placed = new Map<string, Map<string, number>>(); // ns → id → index in ops
  for (const cs of cluster) {
    for (const op of cs.ops) {
      let ids = placed.get(op.ns);
      if (ids === undefined) placed.set(op.ns, (ids = new Map<string, number>()));
      const at = ids.get(op.id);
      if (at === undefined) {
        ids.set(op.id, ops.length);
        ops.push(op);
        continue;
      }
      const earlier = ops[at];
      if (earlier?.op === 'put') earlier.value.fill(0);
      ops[at] = op;
    }
  }
  return { scope: 'cluster', kind: first.kind, ops };
}

/** A namespace's records with the speculated writes over them, in ascending id order (the store's). */
function* overlaid(base: IterableIterator<[string, Uint8Array]>, over: ReadonlyMap<string, Uint8Array | null>): IterableIterator<[string, Uint8Array]> {
  const records = new Map<string, Uint8Array>();
  for (const [id, value] of base) {
    if (over.has(id)) value.fill(0);
    else records.set(id, value);
  }
  for (const [id, value] of over) if (value !== null) records.set(id, value.slice());
  for (const id of [...records.keys()].sort()) yield [id, records.get(id) as Uint8Array];
}

function writeOps(tx: RecordTx, ops: readonly RecordOp[]): void {
  for (const op of ops) {
    if (op.op === 'put') tx.put(op.ns, op.id, op.value);
    else tx.delete(op.ns, op.id);
  }
}

/** Runs a function in the async context of whoever called this (a submit's caller), later, from the
 * writer. An AsyncResource of its own: AsyncResource.bind would also build a deprecation wrapper for
 * each call, a cost every state change paid. */
function inCallerOf(): <R>(f: () => R) => R {
  const resource = new AsyncResource('CofferStateSubmit');
  return (f) => resource.runInAsyncScope(f);
}
