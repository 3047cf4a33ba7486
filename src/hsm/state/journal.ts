// The cluster journal on the device (docs/journal-format.md "Detecting a bad journal", docs/device.md
// "The journal"): the device's journal head, its outbox of one sealed entry, and the delivery of the
// journal's entries into the one apply. This is the contract the control plane's relay and the
// management interface build on: `head`, `takeOffer`, `deliver`, `fault`, `onHead`/`waitForHead`.
//
// - **Head.** (seq, chain hash) of the last entry applied, kept by apply in the state position record
//   (formats/change_set.ts), so it is written in the same transaction as the entry's change set and
//   carried by backups. A cluster's journal begins after initialisation at (0, genesis(cluster id)):
//   cluster.csr and cluster.initialise are decided before any other HSM holds the sync key and are
//   applied directly; every HSM of the cluster is then cloned from a backup that holds them.
// - **Proposing** (DeviceState.submit → `propose`): the entry after the head is sealed and waits in
//   the outbox until the relay takes it (`takeOffer`, once) and the journal's entry at its position
//   is delivered. Its own entry (same chain hash): the change took effect. Another: the append was
//   lost and the decision is made again. Not taken within the decide timeout: withdrawn,
//   COFFER_JOURNAL_NOT_APPENDED. Taken but not delivered in time: COFFER_JOURNAL_OUTCOME_UNKNOWN
//   (the journal holds it wholly or not at all; if it is delivered later it is applied as any entry).
// - **Solo.** A device that no control plane relays (a single HSM, and every node until the relay is
//   built) is its journal's only member: its entry is delivered to itself at once, through the same
//   sealing, opening and apply.
// - **Delivery** applies entries strictly in order: one already applied is ignored when it is the same
//   entry and is a fork when it is not (checked against the last JOURNAL_APPLIED_HASHES_KEPT
//   applied; older ones cannot be checked and are ignored); one ahead of the head stops the delivery
//   without a fault (`waitingFor`: the missing entries may still come) — but once the device has
//   waited JOURNAL_MISSING_ENTRY_WAIT_MS (its clock) with its head below an entry it was delivered,
//   it reports the entry after its head as **missing** (`missing()`, and in every delivery's answer)
//   until that entry arrives and is applied: not a halt, nothing out of order is applied; any other refusal — an entry
//   that does not open against the head, or one that names this HSM as originator though it never
//   prepared it — becomes the journal's **fault**: nothing after it is applied and every later
//   delivery and journaled change is refused (COFFER_JOURNAL_HALTED) until the state is restored or
//   zeroised. The entries of a delivery that open in a row are committed in groups
//   (DeviceState.applyJournalEntries: one store transaction each, up to JOURNAL_APPLY_GROUP_BYTES_MAX,
//   ending at the entry in flight and before anything that does not open); a group whose commit is
//   refused is committed again entry by entry, so an entry refused leaves exactly the entries before
//   it applied.
// - **Recognising its own entries.** The device remembers the hashes of the entries it sealed until
//   the head passes them. After a start or a restore it cannot know what it sealed before, up to the
//   highest position it could have sealed at then (the head at start + 1, or the highest position
//   seen before the restore): an entry naming it at or below that position is accepted unjudged.
//
// Delivery never waits for the writer queue: the writer holds the queue while its entry (a batch of
// decisions: device_state.ts) is in flight, and its fate arrives by delivery. It applies
// synchronously, so it never interleaves with a decision or an apply (device_state.ts). Crypto
// operations never wait on the journal.

import { AsyncLocalStorage } from 'node:async_hooks';

import { assert } from '../../assert.js';
import { CofferError, fail, isCofferError, type ErrorCode } from '../../errors.js';
import { wipeChangeSet, type ChangeSet, type JournalHead } from '../../formats/change_set.js';
import { journalEntryHash, journalGenesis, type OpenedJournalEntry, type SealedJournalEntry } from '../../formats/journal_entry.js';
import {
  JOURNAL_APPLIED_HASHES_KEPT, JOURNAL_APPLY_GROUP_BYTES_MAX, JOURNAL_DECIDE_TIMEOUT_MS_DEFAULT, JOURNAL_DELIVER_ENTRIES_MAX, JOURNAL_HEAD_WAITERS_MAX, JOURNAL_MISSING_ENTRY_WAIT_MS,
  JOURNAL_WAIT_MS_MAX,
} from '../../formats/limits.js';
import { systemClock, type Clock } from '../ports.js';
import type { DeviceState, StateSequencer } from './device_state.js';

/** What the journal needs of the cluster identity (hsm.cluster; rebuilt after a restore). */
export interface JournalCluster {
  /** The cluster id once a CSR exists, else null. */
  clusterId(): string | null;
  /** True when the state holds a sync key and a cluster certificate: the journal is on. */
  hasSyncKey(): boolean;
  /** This device's serial: the originator its entries name. */
  serial(): string;
  seal(cs: ChangeSet, position: { readonly seq: bigint; readonly predecessor: Uint8Array }): SealedJournalEntry;
  open(entry: Uint8Array, position: { readonly seq: bigint; readonly predecessor: Uint8Array }): OpenedJournalEntry;
}

export interface JournalOptions {
  /** 'relayed': entries wait in the outbox for the control plane (`takeOffer`, `deliver`). 'solo'
   * (the default until the control plane relays journals): the device orders its own entries. */
  readonly mode?: 'relayed' | 'solo';
  /** How long a journaled change waits for its entry to be ordered (JOURNAL_DECIDE_TIMEOUT_MS_DEFAULT). */
  readonly decideTimeoutMs?: number;
  /** The clock a missing entry's wait is measured on (default: the system clock). */
  readonly clock?: Clock;
  /** How long an entry missing below a delivered one is waited for before it is reported
   * (JOURNAL_MISSING_ENTRY_WAIT_MS). */
  readonly missingEntryWaitMs?: number;
}

/** An entry the device has waited for longer than its bound: the position after its head, below an
 * entry it was delivered (not a fault: applied when it comes, and the report clears). */
export interface JournalMissing {
  readonly seq: bigint;
  /** How long the head has stood still below the later entry (ms, the device's clock). */
  readonly waitedMs: number;
}

/** A gap seen: entries up to `aheadSeq` exist, the head was at `headSeq` since `sinceMs`. */
interface Gap {
  aheadSeq: bigint;
  headSeq: bigint;
  sinceMs: number;
}

/** The refusal that halted the journal: its error code, the position, and the reason (non-secret). */
export interface JournalFault {
  readonly code: ErrorCode;
  readonly seq: bigint;
  readonly reason: string;
}

/** One journal entry as the relay moves it: its position and its sealed bytes. */
export interface JournalItem {
  readonly seq: bigint;
  readonly entry: Uint8Array;
}

export interface DeliverResult {
  /** The head after the delivery. */
  readonly head: JournalHead;
  /** Entries this delivery applied. */
  readonly applied: number;
  /** Entries at applied positions that were the entries applied there. */
  readonly ignored: number;
  /** When an entry came ahead of the head: the position the device waits for (not a fault). */
  readonly waitingFor?: bigint;
  /** The journal's fault, if it is halted (by this delivery or an earlier one). */
  readonly fault?: JournalFault;
  /** The entry reported missing after the bounded wait (`Journal.missing`), if any. */
  readonly missing?: JournalMissing;
}

/** The entry in flight: sealed, in the outbox until taken, settled when its position is applied. */
interface Pending {
  readonly seq: bigint;
  readonly hash: Uint8Array;
  readonly entry: Uint8Array;
  taken: boolean;
  readonly onOwn: (head: JournalHead) => void;
  readonly resolve: (outcome: 'own' | 'other') => void;
  readonly reject: (e: unknown) => void;
  timer: NodeJS.Timeout | undefined;
}

/** A delivered entry opened at its position and checked, waiting for its group's commit. */
interface OpenedItem {
  readonly seq: bigint;
  readonly hash: Uint8Array;
  readonly changeSet: ChangeSet;
}

/** The positions of the entries applied as this device's own while a caller's calls ran (`withOwnEntries`). */
const ownEntries = new AsyncLocalStorage<JournalHead[]>();

/**
 * Runs `fn` and returns, with its value, the position (seq, chain hash) of every journal entry that
 * this device proposed for `fn`'s state changes and applied as its own: what a data-plane answer
 * names as the entry that made the change (docs/wire-protocol.md "Journal positions"). Empty when
 * the change made no entry (a session object, a cluster without a journal).
 */
export async function withOwnEntries<T>(fn: () => Promise<T>): Promise<{ readonly value: T; readonly entries: readonly JournalHead[] }> {
  const entries: JournalHead[] = [];
  const value = await ownEntries.run(entries, fn);
  return { value, entries };
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;

function checkWaitMs(waitMs: number, field: string): void {
  if (!Number.isInteger(waitMs) || waitMs < 0 || waitMs > JOURNAL_WAIT_MS_MAX) fail('COFFER_FORMAT_LIMIT', { field, max: JOURNAL_WAIT_MS_MAX });
}

export class Journal implements StateSequencer {
  readonly #state: DeviceState;
  readonly #cluster: () => JournalCluster;
  readonly #relayed: boolean;
  readonly #decideTimeoutMs: number;
  readonly #clock: Clock;
  readonly #missingEntryWaitMs: number;
  /** An entry delivered ahead of the head that the head has not reached yet. */
  #gap: Gap | undefined;
  #pending: Pending | undefined;
  #fault: JournalFault | undefined;
  /** Entries this device sealed whose position the head has not passed: hash (hex) → seq. */
  readonly #prepared = new Map<string, bigint>();
  /** Entries naming this device at or below this position may predate what it remembers. */
  #unverifiableThrough: bigint;
  /** The highest position this device applied or sealed at since it started. */
  #highWater: bigint;
  /** Chain hashes of the entries applied last (seq → hash). */
  readonly #applied = new Map<bigint, Uint8Array>();
  readonly #offerWaiters = new Set<() => void>();
  readonly #headListeners = new Set<(head: JournalHead) => void>();

  /** `cluster` returns the current cluster identity (the device rebuilds it after a restore). */
  constructor(state: DeviceState, cluster: () => JournalCluster, options: JournalOptions = {}) {
    const timeoutMs = options.decideTimeoutMs ?? JOURNAL_DECIDE_TIMEOUT_MS_DEFAULT;
    checkWaitMs(timeoutMs, 'decideTimeoutMs');
    assert(timeoutMs > 0, 'a decide timeout is positive');
    this.#state = state;
    this.#cluster = cluster;
    this.#relayed = (options.mode ?? 'solo') === 'relayed';
    this.#decideTimeoutMs = timeoutMs;
    this.#missingEntryWaitMs = options.missingEntryWaitMs ?? JOURNAL_MISSING_ENTRY_WAIT_MS;
    checkWaitMs(this.#missingEntryWaitMs, 'missingEntryWaitMs');
    this.#clock = options.clock ?? systemClock;
    this.#highWater = state.journalHead().seq + 1n;
    this.#unverifiableThrough = this.#highWater;
    state.attachSequencer(this);
  }

  // ── the contract ────────────────────────────────────────────────────────────────────────────

  /** (seq, chain hash) of the last entry applied; at seq 0 the cluster's genesis value (zeros
   * before the cluster has an id). */
  head(): JournalHead {
    const stored = this.#state.journalHead();
    if (stored.seq > 0n) return stored;
    const clusterId = this.#cluster().clusterId();
    return { seq: 0n, hash: clusterId === null ? new Uint8Array(32) : journalGenesis(clusterId) };
  }

  /** The chain hash of the entry applied at `seq` when this device still knows it: the head, and
   * the last JOURNAL_APPLIED_HASHES_KEPT entries applied since it started or was restored. */
  appliedHash(seq: bigint): Uint8Array | undefined {
    const head = this.head();
    if (seq === head.seq) return head.hash;
    if (seq > head.seq) return undefined;
    return this.#applied.get(seq)?.slice();
  }

  /** True when state changes go through the journal (the state holds a sync key). */
  journaled(): boolean {
    return this.#cluster().hasSyncKey();
  }

  /** 'relayed' when the control plane orders the entries, 'solo' when the device orders its own. */
  mode(): 'relayed' | 'solo' {
    return this.#relayed ? 'relayed' : 'solo';
  }

  /** The refusal that halted the journal, if any (for health). */
  fault(): JournalFault | undefined {
    return this.#fault === undefined ? undefined : { ...this.#fault };
  }

  /**
   * The entry after the head, when an entry beyond it was delivered and the head has not moved for
   * the missing-entry wait (module header); undefined otherwise, and while the journal is halted.
   */
  missing(): JournalMissing | undefined {
    const gap = this.#gap;
    if (gap === undefined || this.#fault !== undefined) return undefined;
    const waitedMs = this.#clock.nowMs() - gap.sinceMs;
    return waitedMs >= this.#missingEntryWaitMs ? { seq: gap.headSeq + 1n, waitedMs } : undefined;
  }

  /**
   * The sealed entry waiting in the outbox, taken (each entry is offered once): at once if there is
   * one, else as soon as one is sealed, else undefined after `waitMs`. Sealed bytes only.
   */
  async takeOffer(waitMs: number): Promise<JournalItem | undefined> {
    checkWaitMs(waitMs, 'waitMs');
    const offer = this.#take();
    if (offer !== undefined || waitMs === 0) return offer;
    if (this.#offerWaiters.size >= JOURNAL_HEAD_WAITERS_MAX) fail('COFFER_DEVICE_BUSY', { max: JOURNAL_HEAD_WAITERS_MAX });
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#offerWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, waitMs);
      this.#offerWaiters.add(wake);
    });
    return this.#take();
  }

  /**
   * Applies entries of the journal, in order from head.seq + 1 (module header: what is ignored,
   * what waits, what halts). Applies nothing once the journal is halted.
   */
  deliver(entries: readonly JournalItem[]): Promise<DeliverResult> {
    return new Promise((resolve) => resolve(this.#deliverNow(entries)));
  }

  /** Hears every move of the head (entries applied, a restore). Returns the function that stops it. */
  onHead(listener: (head: JournalHead) => void): () => void {
    if (this.#headListeners.size >= JOURNAL_HEAD_WAITERS_MAX) fail('COFFER_DEVICE_BUSY', { max: JOURNAL_HEAD_WAITERS_MAX });
    this.#headListeners.add(listener);
    return () => void this.#headListeners.delete(listener);
  }

  /** True once the head is at or past `seq`; false if it is not within `waitMs`. */
  waitForHead(seq: bigint, waitMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      checkWaitMs(waitMs, 'waitMs');
      if (this.#state.journalHead().seq >= seq || waitMs === 0) {
        resolve(this.#state.journalHead().seq >= seq);
        return;
      }
      const done = (reached: boolean): void => {
        clearTimeout(timer);
        stop();
        resolve(reached);
      };
      const stop = this.onHead((head) => {
        if (head.seq >= seq) done(true);
      });
      const timer = setTimeout(() => done(false), waitMs);
    });
  }

  // ── StateSequencer (DeviceState.submit) ──────────────────────────────────────────────────────

  ownEntrySink(): ((head: JournalHead) => void) | undefined {
    const sink = ownEntries.getStore();
    return sink === undefined ? undefined : (head) => void sink.push({ seq: head.seq, hash: head.hash.slice() });
  }

  propose(cs: ChangeSet, onOwn: (head: JournalHead) => void): Promise<'own' | 'other'> {
    return new Promise<'own' | 'other'>((resolve, reject) => {
      if (this.#fault !== undefined) throw halted(this.#fault, false);
      assert(this.#pending === undefined, 'one entry in flight per device (the writer queue is held)');
      const head = this.head();
      const seq = head.seq + 1n;
      const sealed = this.#cluster().seal(cs, { seq, predecessor: head.hash });
      this.#prepared.set(hex(sealed.hash), seq);
      if (seq > this.#highWater) this.#highWater = seq;
      const pending: Pending = { seq, hash: sealed.hash, entry: sealed.entry, taken: false, onOwn, resolve, reject, timer: undefined };
      this.#pending = pending;
      if (!this.#relayed) {
        pending.taken = true;
        this.#deliverNow([{ seq, entry: sealed.entry }]);
        assert(this.#pending === undefined, 'a solo journal orders its own entry at once');
        return;
      }
      pending.timer = setTimeout(() => this.#expire(pending), this.#decideTimeoutMs);
      for (const wake of [...this.#offerWaiters]) wake();
    });
  }

  replaced(): void {
    assert(this.#pending === undefined, 'the state is replaced only between writes');
    // What this device sealed before is forgotten with the state: entries naming it up to the
    // highest position it reached can no longer be judged.
    if (this.#highWater > this.#unverifiableThrough) this.#unverifiableThrough = this.#highWater;
    this.#prepared.clear();
    this.#applied.clear();
    this.#fault = undefined;
    this.#gap = undefined;
    const head = this.head();
    if (head.seq + 1n > this.#highWater) this.#highWater = head.seq + 1n;
    this.#tellHead(head);
  }

  // ── internals ───────────────────────────────────────────────────────────────────────────────

  #take(): JournalItem | undefined {
    const p = this.#pending;
    if (p === undefined || p.taken) return undefined;
    p.taken = true;
    return { seq: p.seq, entry: p.entry.slice() };
  }

  #expire(pending: Pending): void {
    if (this.#pending !== pending) return;
    this.#pending = undefined;
    if (pending.taken) {
      pending.reject(new CofferError('COFFER_JOURNAL_OUTCOME_UNKNOWN', { seq: String(pending.seq), timeoutMs: this.#decideTimeoutMs }));
      return;
    }
    this.#prepared.delete(hex(pending.hash)); // withdrawn: it can never be in the journal
    pending.reject(new CofferError('COFFER_JOURNAL_NOT_APPENDED', { seq: String(pending.seq), timeoutMs: this.#decideTimeoutMs }));
  }

  #deliverNow(entries: readonly JournalItem[]): DeliverResult {
    if (entries.length > JOURNAL_DELIVER_ENTRIES_MAX) fail('COFFER_FORMAT_LIMIT', { field: 'entries', max: JOURNAL_DELIVER_ENTRIES_MAX });
    if (!this.journaled()) fail('COFFER_JOURNAL_NO_SYNC_KEY');
    let applied = 0;
    let ignored = 0;
    let waitingFor: bigint | undefined;
    // Entries opened and checked, not yet applied: committed together (#applyGroup) when the group
    // is full, before anything that reads the head or settles the entry in flight, and at the end.
    const group: OpenedItem[] = [];
    let groupBytes = 0;
    const flush = (): void => {
      applied += this.#applyGroup(group.splice(0));
      groupBytes = 0;
    };
    try {
      for (const { seq, entry } of entries) {
        if (this.#fault !== undefined) break;
        const last = group.at(-1) ?? this.head();
        if (seq <= last.seq) {
          flush();
          if (this.#fault !== undefined || !this.#sameAsApplied(seq, entry)) break;
          ignored++;
          continue;
        }
        const next = seq === last.seq + 1n ? this.#openNext(seq, entry, last.hash) : 'ahead';
        if (next === 'ahead' || 'fault' in next) {
          flush();
          if (this.#fault !== undefined) break;
          if (next === 'ahead') {
            const headSeq = this.head().seq;
            waitingFor = headSeq + 1n;
            this.#noteAhead(seq, headSeq);
          } else {
            this.#halt(next.fault);
          }
          break;
        }
        group.push(next);
        groupBytes += entry.length;
        // The entry in flight learns its fate right after its position is applied, as alone.
        if (groupBytes >= JOURNAL_APPLY_GROUP_BYTES_MAX || this.#pending?.seq === seq) flush();
      }
      flush();
    } finally {
      for (const item of group) wipeChangeSet(item.changeSet); // left by a throw
    }
    const head = this.head();
    if (applied > 0) this.#tellHead(head);
    const missing = this.missing();
    return {
      head, applied, ignored, ...(waitingFor === undefined ? {} : { waitingFor }), ...(this.#fault === undefined ? {} : { fault: { ...this.#fault } }),
      ...(missing === undefined ? {} : { missing }),
    };
  }

  /** An entry at `seq` came ahead of the head at `headSeq`: the entries between are waited for, from
   * now unless a wait for them already runs. */
  #noteAhead(seq: bigint, headSeq: bigint): void {
    const gap = this.#gap;
    if (gap === undefined) this.#gap = { aheadSeq: seq, headSeq, sinceMs: this.#clock.nowMs() };
    else if (seq > gap.aheadSeq) gap.aheadSeq = seq;
  }

  /** The head moved to `seq`: a gap it closed is forgotten; one it narrowed is waited for afresh. */
  #headMoved(seq: bigint): void {
    const gap = this.#gap;
    if (gap === undefined) return;
    if (seq >= gap.aheadSeq) this.#gap = undefined;
    else if (seq !== gap.headSeq) {
      gap.headSeq = seq;
      gap.sinceMs = this.#clock.nowMs();
    }
  }

  /**
   * Opens the entry at `seq`, right after `predecessor` (the head's hash, or the group's last):
   * 'ahead' when it says it belongs further on; a fault, with nothing applied or recorded, when it is
   * refused. What its change set may write is checked when its group is committed (#commitGroup).
   */
  #openNext(seq: bigint, entry: Uint8Array, predecessor: Uint8Array): OpenedItem | 'ahead' | { readonly fault: JournalFault } {
    let opened: OpenedJournalEntry;
    try {
      opened = this.#cluster().open(entry, { seq, predecessor });
    } catch (e) {
      if (!isCofferError(e)) throw e;
      if (e.code === 'COFFER_JOURNAL_OUT_OF_ORDER' && e.detail['reason'] === 'skips-entries') return 'ahead';
      return { fault: { code: e.code, seq, reason: reasonOf(e.code, e.detail) } };
    }
    const own = this.#prepared.has(hex(opened.hash));
    if (!own && opened.header.originator === this.#cluster().serial() && seq > this.#unverifiableThrough) {
      wipeChangeSet(opened.changeSet);
      return { fault: { code: 'COFFER_JOURNAL_FORGED', seq, reason: 'not-prepared-here' } };
    }
    return { seq, hash: opened.hash, changeSet: opened.changeSet };
  }

  /** Applies a group of consecutive opened entries (#commitGroup); returns how many were applied.
   * Wipes their values, however it ends. */
  #applyGroup(group: readonly OpenedItem[]): number {
    if (group.length === 0) return 0;
    try {
      return this.#commitGroup(group);
    } finally {
      for (const item of group) wipeChangeSet(item.changeSet);
    }
  }

  /**
   * Commits a group of consecutive opened entries in one store transaction, then notes each and
   * settles the entry in flight at its position; returns how many were applied. If the commit fails
   * with a typed error — a change set that writes what no entry may (COFFER_FORMAT_MALFORMED), a
   * store that refuses a record — nothing of it took effect, and the entries are committed again one
   * by one, so that the one that fails is the one the journal halts at. The values stay the caller's.
   */
  #commitGroup(group: readonly OpenedItem[]): number {
    try {
      this.#state.applyJournalEntries(group.map(({ seq, hash, changeSet }) => ({ cs: changeSet, head: { seq, hash } })));
    } catch (e) {
      if (!isCofferError(e)) throw e;
      const [first] = group;
      assert(first !== undefined, 'a group has entries');
      if (group.length === 1) {
        this.#halt({ code: e.code, seq: first.seq, reason: reasonOf(e.code, e.detail) });
        return 0;
      }
      let applied = 0;
      for (const item of group) {
        if (this.#fault !== undefined) break;
        applied += this.#commitGroup([item]);
      }
      return applied;
    }
    for (const { seq, hash } of group) {
      this.#noteApplied(seq, hash);
      this.#settle(seq, hash);
    }
    return group.length;
  }

  #noteApplied(seq: bigint, hash: Uint8Array): void {
    this.#headMoved(seq);
    this.#applied.set(seq, hash);
    this.#applied.delete(seq - BigInt(JOURNAL_APPLIED_HASHES_KEPT));
    for (const [h, s] of this.#prepared) if (s <= seq) this.#prepared.delete(h);
    if (seq + 1n > this.#highWater) this.#highWater = seq + 1n;
  }

  /** The entry in flight learns its fate once its position is applied. */
  #settle(seq: bigint, hash: Uint8Array): void {
    const p = this.#pending;
    if (p === undefined) return;
    assert(p.seq >= seq, 'the entry in flight is never behind the head');
    if (p.seq !== seq) return;
    this.#pending = undefined;
    clearTimeout(p.timer);
    if (!sameBytes(p.hash, hash)) {
      p.resolve('other');
      return;
    }
    try {
      p.onOwn({ seq, hash: hash.slice() });
      p.resolve('own');
    } catch (e) {
      p.reject(e);
    }
  }

  /** An entry at an applied position: the same entry (true), or a fork recorded as the fault. */
  #sameAsApplied(seq: bigint, entry: Uint8Array): boolean {
    const head = this.#state.journalHead();
    const known = seq === head.seq ? head.hash : this.#applied.get(seq);
    if (known === undefined || sameBytes(known, journalEntryHash(entry))) return true; // too old to judge, or the same
    // Another entry where one was applied. Opened where it claims to be, it says what it is: altered
    // (TAMPERED), sealed under another key (WRONG_KEY), …; an authentic one is a fork.
    const predecessor = seq === 1n ? this.#genesis() : this.#applied.get(seq - 1n);
    let fault: JournalFault = { code: 'COFFER_JOURNAL_FORK', seq, reason: 'another-entry-at-applied-position' };
    if (predecessor !== undefined) {
      try {
        wipeChangeSet(this.#cluster().open(entry, { seq, predecessor }).changeSet);
      } catch (e) {
        if (!isCofferError(e)) throw e;
        if (e.code !== 'COFFER_JOURNAL_FORK') fault = { code: e.code, seq, reason: reasonOf(e.code, e.detail) };
      }
    }
    this.#halt(fault);
    return false;
  }

  #genesis(): Uint8Array {
    const clusterId = this.#cluster().clusterId();
    assert(clusterId !== null, 'a journaled cluster has an id');
    return journalGenesis(clusterId);
  }

  #halt(fault: JournalFault): void {
    this.#fault = fault;
    const p = this.#pending;
    if (p === undefined) return;
    this.#pending = undefined;
    clearTimeout(p.timer);
    p.reject(halted(fault, true));
  }

  #tellHead(head: JournalHead): void {
    for (const listener of [...this.#headListeners]) listener({ seq: head.seq, hash: head.hash.slice() });
  }
}

/** The typed error of a journaled change refused because the journal is halted; `sealed`: its entry
 * had been sealed and offered (it may be in the journal), else nothing of it left the device. */
function halted(fault: JournalFault, sealed: boolean): Error {
  return new CofferError('COFFER_JOURNAL_HALTED', { fault: fault.code, seq: String(fault.seq), reason: fault.reason, sealed });
}

/** A fault's reason: the refusal's own `reason` detail when it has one, else its code. */
function reasonOf(code: ErrorCode, detail: Readonly<Record<string, string | number | boolean>>): string {
  const reason = detail['reason'];
  return typeof reason === 'string' ? reason : code;
}
