// Durability acknowledgements and the client's fork check (docs/sdk.md "Acknowledgements", "Forks";
// docs/architecture.md §5).
//
// - **Acknowledgements.** On a relayed cluster a state-changing answer names the journal entry that
//   made the change (its position: seq, chain hash); the originator applied it, after it was
//   appended, so it counts as the first acknowledgement. The SDK asks the other up HSMs to wait
//   (JOURNAL_WAIT, each wait at most WIRE_JOURNAL_WAIT_MS_MAX, asked again until the deadline) until
//   their head reaches that seq and to say which entry they hold there. The call returns once k HSMs
//   hold the entry, with the list of them; at the deadline it fails COFFER_ACKS_NOT_MET, whose detail
//   says how many and which HSMs acknowledged — the change is in the journal all the same, never
//   half. Solo clusters and changes that made no entry are not acknowledged: k does not apply.
// - **Forks.** Every (seq, hash) an HSM reports — the originator's position, JOURNAL_WAIT answers,
//   STATUS heads — is compared with the reference at that seq: the entry an originator answered for
//   a change this client made (the client saw it acknowledged). An HSM that reports another hash
//   there holds a forked journal: the SDK retires it (never used or probed again;
//   COFFER_CLUSTER_FORKED in Cluster.nodes, naming the position), and a state change whose
//   acknowledgement saw the fork fails with that error. Reports that disagree before a reference is
//   known are kept until one is. The positions known are bounded (CLIENT_JOURNAL_POSITIONS_KEPT,
//   oldest dropped first).

import { CofferError, isCofferError } from '../errors.js';
import { WIRE_JOURNAL_WAIT_MS_MAX } from '../formats/limits.js';
import type { JournalPosition, NodeLink } from './node_link.js';

/** Positions (seq → hash) the fork check remembers: a few minutes of state changes at a high rate. */
export const CLIENT_JOURNAL_POSITIONS_KEPT = 4096;

/** Which HSMs acknowledged a state change (node indexes, as in Cluster.nodes), and the entry that made it. */
export interface Acknowledgement {
  /** The journal entry that made the change; absent when it made none or the cluster is solo. */
  readonly position?: JournalPosition;
  /** The HSMs that hold the change: the originator first. */
  readonly nodes: readonly number[];
  /** The acknowledgements asked for (1 when k does not apply: a solo cluster, no entry). */
  readonly required: number;
}

/** A valid acknowledgement count: 1 … the number of HSMs the client knows (else COFFER_CLIENT_CONFIG_INVALID). */
export function checkAcks(k: number, nodes: number): number {
  if (!Number.isInteger(k) || k < 1 || k > nodes) throw new CofferError('COFFER_CLIENT_CONFIG_INVALID', { reason: `acks must be an integer 1-${nodes} (the number of endpoints)` });
  return k;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** What the client knows of one journal position: the acknowledged entry's hash, once an originator
 * answered for it, and who reported which hash before that. */
interface Known {
  reference: string | undefined;
  readonly reports: Map<string, Set<NodeLink>>;
}

/** What the client knows of the cluster journal: the hashes reported at each recent seq, and by whom. */
export class JournalView {
  readonly #known = new Map<bigint, Known>();
  /** Listeners of the forks found (acknowledge() collects those found while it waits). */
  readonly #onFork = new Set<(error: CofferError) => void>();

  /**
   * An HSM reported `hash` at `seq`; `reference`: it is the originator's own entry, answered for a
   * change this client made. An HSM whose report differs from the reference is retired at once;
   * reports that disagree while no reference is known wait for one (neither side is known to be the
   * cluster's journal, and the client must not drop a healthy HSM on a guess).
   */
  observe(link: NodeLink, seq: bigint, hash: Uint8Array, reference = false): void {
    if (link.retired !== undefined) return;
    const h = hex(hash);
    const known = this.#at(seq);
    if (!reference) {
      if (known.reference === undefined) {
        const set = known.reports.get(h) ?? new Set<NodeLink>();
        set.add(link);
        known.reports.set(h, set);
      } else if (known.reference !== h) {
        this.#fork(link, seq);
      }
      return;
    }
    known.reference ??= h;
    if (known.reference !== h) {
      this.#fork(link, seq); // an originator that answers for another entry than the one acknowledged
      return;
    }
    for (const [other, links] of known.reports) if (other !== h) for (const l of links) this.#fork(l, seq);
    known.reports.clear();
  }

  /** Runs `fn` and collects the forks seen meanwhile. */
  async watching<T>(fn: (forks: CofferError[]) => Promise<T>): Promise<T> {
    const forks: CofferError[] = [];
    const listener = (e: CofferError): void => void forks.push(e);
    this.#onFork.add(listener);
    try {
      return await fn(forks);
    } finally {
      this.#onFork.delete(listener);
    }
  }

  #fork(link: NodeLink, seq: bigint): void {
    if (link.retired !== undefined) return;
    const error = new CofferError('COFFER_CLUSTER_FORKED', { seq: String(seq), node: link.index, host: link.endpoint.host, port: link.endpoint.port });
    link.retire(error);
    for (const f of [...this.#onFork]) f(error);
  }

  #at(seq: bigint): Known {
    let known = this.#known.get(seq);
    if (known !== undefined) return known;
    known = { reference: undefined, reports: new Map() };
    this.#known.set(seq, known);
    if (this.#known.size > CLIENT_JOURNAL_POSITIONS_KEPT) {
      const oldest = this.#known.keys().next();
      if (oldest.done !== true) this.#known.delete(oldest.value);
    }
    return known;
  }
}

/** Waits until k of `links` hold the entry `origin` made at `position` (module header). */
export async function acknowledge(
  view: JournalView, links: readonly NodeLink[], origin: NodeLink, position: JournalPosition | undefined, k: number, timeoutMs: number,
): Promise<Acknowledgement> {
  if (position === undefined || origin.journalMode !== 'relayed') return { nodes: [origin.index], required: 1 };
  origin.sawPosition(position);
  const acked = [origin.index];
  if (k <= 1) {
    view.observe(origin, position.seq, position.hash, true);
    return { position, nodes: acked, required: k };
  }
  const deadline = Date.now() + timeoutMs;
  return view.watching(async (forks) => {
    // The reference may retire an HSM that reported another entry here before the answer came (a
    // watch's answer, watchHeads): a fork this acknowledgement sees, like one found while it waits.
    view.observe(origin, position.seq, position.hash, true);
    const others = othersUp(links, origin);
    await new Promise<void>((resolve) => {
      let open = others.length;
      const finished = (): void => {
        open--;
        if (open === 0) resolve();
      };
      if (open === 0) resolve();
      for (const link of others) {
        void holds(link, position, deadline, () => acked.length >= k || forks.length > 0).then((held) => {
          if (held) acked.push(link.index);
          if (acked.length >= k || forks.length > 0) resolve();
          finished();
        });
      }
    });
    if (forks.length > 0) {
      const first = forks[0] as CofferError;
      throw new CofferError('COFFER_CLUSTER_FORKED', { ...first.detail, seq: String(position.seq), acknowledged: acked.length, acknowledgedBy: acked.join(','), inJournal: true });
    }
    if (acked.length < k) {
      throw new CofferError('COFFER_ACKS_NOT_MET', {
        seq: String(position.seq), required: k, acknowledged: acked.length, acknowledgedBy: acked.join(','), inJournal: true, timeoutMs,
      });
    }
    return { position, nodes: acked, required: k };
  });
}

/**
 * Sent as a state change leaves (k ≥ 2, a relayed origin): asks each other up relayed HSM to answer
 * once its head passes the next entry (JOURNAL_WAIT at its head + 1, the calls of one entry joining
 * one wait). An HSM usually applies the entry before the originator's answer reaches the client, so
 * the acknowledgement then finds what that HSM holds already known (NodeLink.heldHash) instead of
 * asking after the answer: a round trip less on every acknowledged change.
 */
export function watchHeads(links: readonly NodeLink[], origin: NodeLink, k: number, waitMs: number): void {
  if (k <= 1 || origin.journalMode !== 'relayed') return;
  for (const link of othersUp(links, origin)) {
    if (link.journalMode !== 'relayed' || link.headSeq < 0n) continue;
    link.waitJournal(link.headSeq + 1n, Math.min(WIRE_JOURNAL_WAIT_MS_MAX, waitMs)).catch(() => undefined); // a failed watch only leaves the asking to the acknowledgement
  }
}

/** The HSMs other than `origin` that an acknowledgement may ask: up, and not retired as forked. */
function othersUp(links: readonly NodeLink[], origin: NodeLink): NodeLink[] {
  return links.filter((l) => l !== origin && l.state === 'up' && l.retired === undefined);
}

/** True once `link` holds the entry at `position` (its hash there is the entry's), false when the
 * deadline passes, the node fails, reports another entry (the view retires it), or `enough` says the
 * others already made k. */
async function holds(link: NodeLink, position: JournalPosition, deadline: number, enough: () => boolean): Promise<boolean> {
  const held = link.heldHash(position.seq);
  if (held !== undefined && link.retired === undefined) return hex(held) === hex(position.hash); // another hash: the view retired it as forked
  while (!enough() && link.retired === undefined) {
    const leftMs = deadline - Date.now();
    if (leftMs <= 0) return false;
    let answer: Awaited<ReturnType<NodeLink['waitJournal']>>;
    try {
      answer = await link.waitJournal(position.seq, Math.min(WIRE_JOURNAL_WAIT_MS_MAX, leftMs));
    } catch (e) {
      if (isCofferError(e)) return false; // down, busy or refused: it does not acknowledge
      throw e;
    }
    if (link.retired !== undefined) return false;
    if (answer.mode !== 'relayed') return false;
    if (!answer.reached) continue;
    // Past the position with the hash no longer known there (restored since): its head is past the
    // entry, which the journal held before the restore's backup could; it holds the change.
    return answer.hashAtSeq === undefined || hex(answer.hashAtSeq) === hex(position.hash);
  }
  return false;
}
