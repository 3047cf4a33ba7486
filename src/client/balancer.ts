// Which node gets the next call (docs/architecture.md §7, docs/sdk.md "Balancing").
//
// Least-loaded by weighted in-flight count: score = (client in-flight + 1) / weight, weight = the
// node's reported capacity (STATUS capacityOpsPerSecond; equal weights when any candidate has not
// measured its own) times the share of it other clients leave free. The client's own in-flight
// counts are exact and current, so a full scan (N ≤ CLIENT_ENDPOINTS_MAX) beats sampling two
// (power-of-two-choices pays off when load figures are stale or N is large; neither holds here).
// Under steady concurrency the in-flight counts, and so the traffic, settle in proportion to the
// weights. Ties go to a rotating start, so sequential callers spread too.

export interface Balanced {
  readonly index: number;
  readonly state: string;
  readonly inFlight: number;
  readonly inFlightMax: number;
  readonly capacityOpsPerSecond: number;
  readonly othersLoad: number;
  readonly busyUntilMs: number;
  readonly missing: ReadonlySet<number>;
}

/** Relaxations, tried in turn when no node fits strictly. */
export const PICK_STRICT = 0;
export const PICK_IGNORE_TRIED = 1;
export const PICK_IGNORE_MISSING = 2;

/** Every node: the `allowed` mask of a call that may go anywhere. */
export const ALL_NODES = -1;

/** The best node for a call, or undefined when none is up with room and without a BUSY hint.
 * `tried` is a bit mask of node indexes this call already failed on; `handle` the object it uses;
 * `allowed` the nodes it may go to at all (a key found on one node goes only where the state is
 * known to match). */
export function pickLink<L extends Balanced>(links: readonly L[], handle: number | undefined, tried: number, nowMs: number, start: number, relax: number, allowed = ALL_NODES): L | undefined {
  const n = links.length;
  let measured = true;
  for (let i = 0; i < n; i++) if ((links[i] as L).capacityOpsPerSecond === 0) measured = false;
  let best: L | undefined;
  let bestScore = Infinity;
  for (let k = 0; k < n; k++) {
    const l = links[(start + k) % n] as L;
    if ((allowed & (1 << l.index)) === 0 || l.state !== 'up' || l.inFlight >= l.inFlightMax || l.busyUntilMs > nowMs) continue;
    if ((relax & PICK_IGNORE_TRIED) === 0 && (tried & (1 << l.index)) !== 0) continue;
    if ((relax & PICK_IGNORE_MISSING) === 0 && handle !== undefined && l.missing.size !== 0 && l.missing.has(handle)) continue;
    const weight = (measured ? l.capacityOpsPerSecond : 1) * (1 - l.othersLoad);
    const score = (l.inFlight + 1) / weight;
    if (score < bestScore) {
      best = l;
      bestScore = score;
    }
  }
  return best;
}
