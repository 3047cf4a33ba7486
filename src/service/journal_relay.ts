// The journal relay (docs/control-plane.md "The journal relay", docs/journal-format.md): what makes a
// cluster's HSMs one logical HSM. Run by the orchestrator lease holder only; for each HSM of a
// cluster it relays, two loops over the HSM's management interface:
//
// - **Offers → the journal.** Long-polls the HSM's outbox (`takeJournalOffer`) and appends the
//   sealed entry with compare-and-append on its sequence number (MetadataStore.appendJournal). A
//   COFFER_JOURNAL_CONFLICT means another HSM's entry won that position: nothing to do, the
//   originator learns it from delivery and decides again. Before appending, the relay checks what it
//   can without a key: the header decodes, names the position it was offered at, and its predecessor
//   is the chain hash of the stored entry at seq − 1 (or the genesis value at seq 1). An entry that
//   fails is not appended (the HSM's change then times out, COFFER_JOURNAL_OUTCOME_UNKNOWN): the
//   store never holds an entry the relay knows is unlinked. The HSMs check everything again — the
//   relay is not trusted for that; this only keeps a confused or stale HSM from poisoning the store.
// - **The journal → the HSM.** Delivers the stored entries from the HSM's head + 1 whenever the
//   cluster's journal head moves: signalled in-process after an append, and polled on an interval
//   for appends by other service processes on one PostgreSQL store (only a poll, a start or a failure
//   reads the store's head; its own append tells the relay the head). A delivery answer that carries a
//   fault is reported (`onFault`): the orchestrator marks the HSM and the cluster DEGRADED with a
//   message naming the code and position, and the relay delivers nothing more to that device.
//
// `catchUp` brings a new or restored HSM from its backup's position to the journal head before the
// orchestrator reports it ACTIVE. The relay keeps nothing that a restart needs: a new lease holder
// starts from the store and asks each HSM its head. Entry bytes are never logged.

import type { Logger } from 'pino';
import { CofferError, fail, isCofferError } from '../errors.js';
import { decodeJournalEntryHeader, journalEntryHash, journalGenesis } from '../formats/journal_entry.js';
import { journalFramesBytes, type JournalFrame } from '../formats/journal_frames.js';
import { JOURNAL_DELIVER_ENTRIES_MAX, MANAGEMENT_JOURNAL_BODY_BYTES_MAX } from '../formats/limits.js';
import type { JournalDelivery, ManagementClient } from '../management/client.js';
import type { JournalFaultReport } from '../formats/management.js';
import { JOURNAL_READ_LIMIT_MAX, type MetadataStore } from '../storage/metadata_port.js';
import type { Fleet, FleetDevice } from './fleet/fleet_port.js';
import type { BackupDoc } from './records.js';

/** How long one offer long-poll waits: short, so a stopping relay is never held up for long. */
export const RELAY_OFFER_WAIT_MS = 2_000;
/** How often a delivery loop reads the store's head without a signal (other processes' appends). */
export const RELAY_POLL_INTERVAL_MS = 1_000;
/** After a failed call (a node restarting, the store unreachable) a loop waits this long. */
const RELAY_RETRY_MS = 1_000;
/** Entries read from the store per delivery (also bounded by the request's bytes). */
const RELAY_PAGE_ENTRIES = Math.min(JOURNAL_READ_LIMIT_MAX, JOURNAL_DELIVER_ENTRIES_MAX);
/** Entries of its own appends the relay keeps per cluster (its tail of the journal), so that it
 * checks the next offer's link and delivers what it just appended without reading them back. */
export const RELAY_TAIL_ENTRIES = 16;
/** Deliveries one catch-up makes at most: a page each, so a million entries behind; a journal that
 * long is compacted after the next backup. */
const CATCH_UP_DELIVERIES_MAX = 1000;

/** An HSM the relay serves: its cluster, its id and its device. */
export interface RelayTarget {
  readonly clusterId: string;
  readonly hsmId: string;
  readonly device: FleetDevice;
}

export interface JournalRelayOptions {
  readonly store: MetadataStore;
  readonly fleet: Fleet;
  readonly log: Logger;
  /** An HSM reported a fault (in a delivery answer). */
  readonly onFault: (target: RelayTarget, fault: JournalFaultReport) => void;
  readonly offerWaitMs?: number;
  readonly pollIntervalMs?: number;
}

interface Link {
  readonly target: RelayTarget;
  stopped: boolean;
  faulted: boolean;
  wake: (() => void) | undefined;
  /** The head moved while the delivery loop was not sleeping: its next sleep returns at once. */
  signalled: boolean;
  readonly loops: Promise<void>[];
}

/** An entry this relay appended, with its chain hash. */
interface TailEntry {
  readonly seq: bigint;
  readonly entry: Uint8Array;
  readonly hash: Uint8Array;
}

const keyOf = (t: RelayTarget): string => `${t.hsmId}/${t.device.serial}`;
const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

export class JournalRelay {
  readonly #o: JournalRelayOptions;
  readonly #links = new Map<string, Link>();
  /** Appends serialised per cluster in this process, so two of its own offers never race each other. */
  readonly #appending = new Map<string, Promise<unknown>>();
  /**
   * Per cluster, the last entries this relay appended, consecutive, oldest first. An entry at a
   * position never changes, so what the tail holds is the store's; appends by other processes (one
   * PostgreSQL store) only make it short of the head, and then the store is read.
   */
  readonly #tails = new Map<string, TailEntry[]>();

  constructor(options: JournalRelayOptions) {
    this.#o = options;
  }

  /** Runs loops for exactly these HSMs: starts the missing ones, stops the others. */
  sync(targets: readonly RelayTarget[]): void {
    const wanted = new Map(targets.map((t) => [keyOf(t), t]));
    for (const [key, link] of this.#links) {
      if (wanted.has(key)) continue;
      link.stopped = true;
      link.wake?.();
      this.#links.delete(key);
    }
    for (const [key, target] of wanted) if (!this.#links.has(key)) this.#links.set(key, this.#start(target));
    const relayed = new Set(targets.map((t) => t.clusterId));
    for (const clusterId of this.#tails.keys()) if (!relayed.has(clusterId)) this.#tails.delete(clusterId);
  }

  /** Stops every loop and waits for them (an offer long-poll ends within its short wait). */
  async stop(): Promise<void> {
    const links = [...this.#links.values()];
    this.sync([]);
    await Promise.allSettled(links.flatMap((l) => l.loops));
  }

  /** Wakes the delivery loops of a cluster (its journal head moved); `first`: that HSM's loop before
   * the others, so that its delivery is written first. The relay wakes the HSM whose entry it just
   * appended first: that HSM answers the callers of the change, and its apply is on their path. */
  signal(clusterId: string, first?: string): void {
    const links = [...this.#links.values()].filter((l) => l.target.clusterId === clusterId);
    for (const link of [...links.filter((l) => l.target.hsmId === first), ...links.filter((l) => l.target.hsmId !== first)]) {
      if (link.wake === undefined) link.signalled = true;
      else link.wake();
    }
  }

  /**
   * Delivers the journal to `device` until its head reaches the journal head (read again after each
   * delivery, so appends made meanwhile are delivered too). Fails with COFFER_JOURNAL_NOT_CAUGHT_UP
   * when the device reports a fault, waits for an entry the store no longer holds, or makes no progress.
   */
  async catchUp(clusterId: string, device: FleetDevice): Promise<bigint> {
    const mgmt = this.#o.fleet.management(device);
    const health = await mgmt.health();
    let head = health.journalPosition;
    let headHash = health.journalHeadHash;
    for (let i = 0; i < CATCH_UP_DELIVERIES_MAX; i++) {
      const journalHead = BigInt(await this.#o.store.journalHead(clusterId));
      if (head >= journalHead) {
        await this.#checkSameHead(clusterId, head, journalHead, headHash);
        return head;
      }
      const r = await this.#deliverFrom(mgmt, clusterId, head).catch((e: unknown) => this.#gapInStore(clusterId, head, e));
      if (r.fault !== null) fail('COFFER_JOURNAL_NOT_CAUGHT_UP', { reason: 'fault', fault: r.fault.code, seq: String(r.fault.seq) });
      if (r.headSeq <= head) fail('COFFER_JOURNAL_NOT_CAUGHT_UP', { reason: 'no-progress', seq: String(head) });
      head = r.headSeq;
      headHash = r.headHash;
    }
    return fail('COFFER_JOURNAL_NOT_CAUGHT_UP', { reason: 'too-far-behind', seq: String(head) });
  }

  /**
   * A catch-up the store cannot serve from `head` + 1: compacted away when the store's first entry is
   * above it; otherwise the store holds entries before and after it but lacks this one — the store is
   * damaged (`reason: missing-in-store`), which no newer backup mends.
   */
  async #gapInStore(clusterId: string, head: bigint, e: unknown): Promise<never> {
    if (!isCofferError(e, 'COFFER_JOURNAL_NOT_CAUGHT_UP') || e.detail['reason'] !== 'compacted') throw e;
    const [first] = await this.#o.store.readJournal(clusterId, 1, 1);
    if (first !== undefined && BigInt(first.seq) <= head) fail('COFFER_JOURNAL_NOT_CAUGHT_UP', { reason: 'missing-in-store', seq: String(head + 1n) });
    throw e;
  }

  /**
   * An HSM that reached the journal head by position must hold the journal's entry there, not another
   * one of the same number (a backup of a forked branch, or of another cluster, served to it): its
   * head hash is compared with the stored entry's chain hash (the genesis value at 0). An HSM ahead
   * of the store holds entries the journal does not. Either is COFFER_JOURNAL_NOT_CAUGHT_UP, and the
   * HSM is not reported ACTIVE. A head whose entry was compacted away, or an HSM that does not report
   * its head hash, cannot be checked here; the next delivery checks it (docs/journal-format.md).
   */
  async #checkSameHead(clusterId: string, head: bigint, journalHead: bigint, headHash: string | null): Promise<void> {
    if (head > journalHead) fail('COFFER_JOURNAL_NOT_CAUGHT_UP', { reason: 'ahead-of-journal', seq: String(head) });
    if (headHash === null) return;
    const expected = await storedChainHash(this.#o.store, clusterId, head, clusterId);
    if (expected !== undefined && hexOf(expected) !== headHash) fail('COFFER_JOURNAL_NOT_CAUGHT_UP', { reason: 'other-head', seq: String(head) });
  }

  /** The journal from `head` + 1, one bounded delivery. */
  async #deliverFrom(mgmt: ManagementClient, clusterId: string, head: bigint): Promise<JournalDelivery> {
    const tail = this.#tails.get(clusterId);
    const first = tail?.[0];
    let page: readonly JournalFrame[];
    if (tail !== undefined && first !== undefined && first.seq <= head + 1n && head + 1n <= (tail.at(-1) as TailEntry).seq) {
      page = tail.slice(Number(head + 1n - first.seq));
    } else {
      const rows = await this.#o.store.readJournal(clusterId, Number(head + 1n), RELAY_PAGE_ENTRIES);
      if (rows[0]?.seq !== Number(head + 1n)) fail('COFFER_JOURNAL_NOT_CAUGHT_UP', { reason: 'compacted', seq: String(head + 1n) });
      page = rows.map((row) => ({ seq: BigInt(row.seq), entry: row.entry }));
    }
    const frames: JournalFrame[] = [];
    let bytes = journalFramesBytes([]);
    for (const f of page) {
      bytes += journalFramesBytes([f]) - journalFramesBytes([]);
      if (frames.length > 0 && bytes > MANAGEMENT_JOURNAL_BODY_BYTES_MAX) break;
      frames.push({ seq: f.seq, entry: f.entry });
    }
    return mgmt.deliverJournal(frames);
  }

  // ── the loops ───────────────────────────────────────────────────────────────────────────────

  #start(target: RelayTarget): Link {
    const link: Link = { target, stopped: false, faulted: false, wake: undefined, signalled: false, loops: [] };
    link.loops.push(this.#offers(link).catch((e: unknown) => this.#bug(link, e)), this.#deliveries(link).catch((e: unknown) => this.#bug(link, e)));
    return link;
  }

  #bug(link: Link, e: unknown): void {
    this.#o.log.error({ event: 'journal.relay.stopped', hsmId: link.target.hsmId, err: words(e) }, 'journal relay loop stopped');
  }

  async #offers(link: Link): Promise<void> {
    const { clusterId, hsmId, device } = link.target;
    const mgmt = this.#o.fleet.management(device);
    while (!link.stopped) {
      let offer: JournalFrame | undefined;
      try {
        offer = await mgmt.takeJournalOffer(this.#o.offerWaitMs ?? RELAY_OFFER_WAIT_MS);
      } catch {
        if (!link.stopped) await pause(RELAY_RETRY_MS);
        continue;
      }
      // An entry taken is appended even when the link is stopping: dropped, its change would only
      // time out at the HSM.
      if (offer !== undefined) await this.#serialised(clusterId, () => this.#append(clusterId, hsmId, offer));
    }
  }

  async #serialised<T>(clusterId: string, work: () => Promise<T>): Promise<T> {
    const before = this.#appending.get(clusterId) ?? Promise.resolve();
    const run = before.then(work, work);
    const settled = run.catch(() => undefined);
    this.#appending.set(clusterId, settled);
    try {
      return await run;
    } finally {
      if (this.#appending.get(clusterId) === settled) this.#appending.delete(clusterId);
    }
  }

  /** Checks the entry's header and link to the stored journal, then compare-and-appends it. */
  async #append(clusterId: string, hsmId: string, offer: JournalFrame): Promise<void> {
    const seq = Number(offer.seq);
    try {
      // The entry after the one this relay appended last, linked to it: checked against the tail
      // (what the store holds there) instead of read back; any other goes through the full check.
      if (!this.#followsTail(clusterId, offer)) {
        const refusal = await journalLinkRefusal(this.#o.store, clusterId, offer);
        if (refusal === 'lost') return;
        if (refusal !== undefined) {
          this.#o.log.warn({ event: 'journal.append.refused', clusterId, hsmId, seq, reason: refusal }, 'journal entry not appended');
          return;
        }
      }
      await this.#o.store.appendJournal(clusterId, seq, offer.entry);
      this.#extendTail(clusterId, offer);
      this.#o.log.debug({ event: 'journal.appended', clusterId, hsmId, seq, bytes: offer.entry.length }, 'journal entry appended');
      this.signal(clusterId, hsmId);
    } catch (e) {
      if (isCofferError(e, 'COFFER_JOURNAL_CONFLICT')) return; // another entry won the position
      this.#o.log.warn({ event: 'journal.append.failed', clusterId, hsmId, seq, err: words(e) }, 'journal append failed');
    }
  }

  /** True when `offer` names the position after the tail's last entry and links to it (its header
   * decodes, names that position, and its predecessor is the last entry's chain hash). */
  #followsTail(clusterId: string, offer: JournalFrame): boolean {
    const last = this.#tails.get(clusterId)?.at(-1);
    if (last === undefined || offer.seq !== last.seq + 1n) return false;
    try {
      const header = decodeJournalEntryHeader(offer.entry);
      return header.seq === offer.seq && Buffer.compare(header.predecessor, last.hash) === 0;
    } catch {
      return false; // the full check names the refusal
    }
  }

  /** `offer` was appended: the tail goes on with it (or starts again from it), bounded. */
  #extendTail(clusterId: string, offer: JournalFrame): void {
    const tail = this.#tails.get(clusterId);
    const entry: TailEntry = { seq: offer.seq, entry: offer.entry, hash: journalEntryHash(offer.entry) };
    if (tail === undefined || tail.at(-1)?.seq !== offer.seq - 1n) {
      this.#tails.set(clusterId, [entry]);
      return;
    }
    tail.push(entry);
    if (tail.length > RELAY_TAIL_ENTRIES) tail.shift();
  }

  async #deliveries(link: Link): Promise<void> {
    const { clusterId, device } = link.target;
    const mgmt = this.#o.fleet.management(device);
    let head: bigint | undefined;
    // The store's head is read at the start, after a failure and at every poll (appends by other
    // service processes). Woken by this relay's own append, the loop delivers up to the later of
    // that read and the last entry the relay appended (its tail's), without reading the store.
    let poll = true;
    let read = 0n;
    while (!link.stopped) {
      try {
        if (head === undefined) {
          const health = await mgmt.health();
          head = health.journalPosition;
          if (health.journalFault !== null) link.faulted = true;
        }
        if (poll) read = BigInt(await this.#o.store.journalHead(clusterId));
        const appended = this.#tails.get(clusterId)?.at(-1)?.seq ?? 0n;
        const journalHead = appended > read ? appended : read;
        if (!link.faulted && head < journalHead) {
          const r = await this.#deliverFrom(mgmt, clusterId, head);
          head = r.headSeq;
          if (r.fault !== null) {
            link.faulted = true;
            this.#o.onFault(link.target, r.fault);
          }
          if (r.applied > 0) {
            poll = false;
            continue;
          }
        }
      } catch (e) {
        head = undefined;
        if (!(e instanceof CofferError) || e.code !== 'COFFER_JOURNAL_NOT_CAUGHT_UP') this.#o.log.debug({ event: 'journal.deliver.retry', hsmId: link.target.hsmId, err: words(e) }, 'journal delivery failed; retrying');
        else this.#o.log.warn({ event: 'journal.deliver.behind', hsmId: link.target.hsmId, err: words(e) }, 'HSM needs entries the journal no longer holds');
      }
      poll = (await this.#sleep(link, this.#o.pollIntervalMs ?? RELAY_POLL_INTERVAL_MS)) || head === undefined;
    }
  }

  /** Waits `ms`, or less when the cluster's head moves or the link stops; true when the whole `ms`
   * passed (a poll is due). A move signalled while the loop was busy (between its read of the head
   * and this sleep) ends the sleep at once: otherwise an append would wait for the next poll to be
   * delivered. */
  #sleep(link: Link, ms: number): Promise<boolean> {
    const signalled = link.signalled;
    link.signalled = false;
    if (link.stopped || signalled) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const done = (elapsed: boolean): void => {
        clearTimeout(timer);
        link.wake = undefined;
        resolve(elapsed);
      };
      const timer = setTimeout(() => done(true), ms);
      link.wake = () => done(false);
    });
  }
}

/**
 * Why an offered entry must not be appended, checked without a key against the stored journal:
 * 'lost' (another entry holds its position already), a header that does not decode or names another
 * position, a position past the next one, or a predecessor that is not the chain hash of the stored
 * entry before it (the genesis value of the header's cluster id at seq 1); undefined when it links.
 */
export async function journalLinkRefusal(store: MetadataStore, clusterId: string, offer: JournalFrame): Promise<string | undefined> {
  let header;
  try {
    header = decodeJournalEntryHeader(offer.entry);
  } catch (e) {
    return isCofferError(e) ? `header: ${e.code}` : 'header';
  }
  if (header.seq !== offer.seq) return 'seq-differs-from-offer';
  if (offer.seq > BigInt(Number.MAX_SAFE_INTEGER)) return 'seq-out-of-range';
  const stored = BigInt(await store.journalHead(clusterId));
  if (offer.seq <= stored) return 'lost';
  if (offer.seq > stored + 1n) return 'skips-positions';
  const expected = await storedChainHash(store, clusterId, offer.seq - 1n, header.clusterId);
  if (expected === undefined) return 'predecessor-not-stored';
  return hexOf(expected) === hexOf(header.predecessor) ? undefined : 'predecessor-mismatch';
}

/** The chain hash the stored journal of `clusterId` holds at `seq`: at 0 the genesis value of
 * `genesisClusterId`, else the stored entry's hash; undefined when that entry is not stored. */
export async function storedChainHash(store: MetadataStore, clusterId: string, seq: bigint, genesisClusterId: string): Promise<Uint8Array | undefined> {
  if (seq === 0n) return journalGenesis(genesisClusterId);
  const [row] = await store.readJournal(clusterId, Number(seq), 1);
  return row?.seq === Number(seq) ? journalEntryHash(row.entry) : undefined;
}

/**
 * The compaction rule (docs/control-plane.md "Compaction"): entries below the returned position may
 * be dropped; undefined: drop nothing. The floor is the lowest of every HSM's journal head and the
 * journal position of every backup a restore may still use (READY, or PENDING_DELETION, which
 * RestoreBackup brings back). The entry at the floor is kept, so the predecessor of the next entry can
 * still be checked. A backup without a recorded position (recorded before the relay, or a copy)
 * might need the whole journal, so nothing is dropped while it can be restored.
 */
export function compactionFloor(hsmHeads: readonly bigint[], backups: readonly Pick<BackupDoc, 'state' | 'journalPosition'>[]): bigint | undefined {
  const positions = [...hsmHeads];
  for (const b of backups) {
    if (b.state !== 'READY' && b.state !== 'PENDING_DELETION') continue;
    if (b.journalPosition === undefined) return undefined;
    positions.push(BigInt(b.journalPosition));
  }
  if (positions.length === 0) return undefined;
  const floor = positions.reduce((a, b) => (b < a ? b : a));
  return floor > 1n ? floor : undefined;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** An error as log words: its code or name and message, never its detail objects. */
function words(e: unknown): string {
  if (e instanceof Error) return `${(e as { code?: string }).code ?? e.name}: ${e.message}`;
  return String(e);
}
