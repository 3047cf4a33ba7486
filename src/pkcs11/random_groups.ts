// C_GenerateRandom calls that reach the bridge together share one HSM call (docs/pkcs11.md,
// "Random").
//
// The frames of one socket read are served in one turn of the event loop, each of several threads'
// C_GenerateRandom calls up to its wait on the HSM. Those that ask the same cluster in that turn are
// gathered, and when the turn's synchronous work is done (a microtask) one RANDOM of their summed
// length goes to the HSM; each call gets its own disjoint slice of the answer. So every call's bytes
// still come from an HSM call made after that call arrived, and no byte is kept for a later call or
// handed to two calls; what is saved is the per-call work of the SDK, the channel and the node. A
// group is at most RANDOM_BYTES_MAX, the most one RANDOM carries; a call that would overflow it
// starts the next group. When the HSM call fails, every call of its group fails with that error.

import type { Cluster } from '../client/index.js';
import { RANDOM_BYTES_MAX } from '../formats/limits.js';

interface Waiter {
  readonly length: number;
  readonly resolve: (bytes: Uint8Array) => void;
  readonly reject: (e: unknown) => void;
}

interface Group {
  length: number;
  readonly waiters: Waiter[];
}

export class RandomGroups {
  /** The group being gathered in this turn, per cluster. */
  readonly #open = new Map<Cluster, Group>();

  /** `length` (1 … RANDOM_BYTES_MAX) random bytes from `cluster`'s HSMs. */
  take(cluster: Cluster, length: number): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      let group = this.#open.get(cluster);
      if (group !== undefined && group.length + length > RANDOM_BYTES_MAX) {
        this.#dispatch(cluster, group);
        group = undefined;
      }
      if (group === undefined) {
        const opened: Group = { length: 0, waiters: [] };
        this.#open.set(cluster, opened);
        queueMicrotask(() => {
          if (this.#open.get(cluster) === opened) this.#dispatch(cluster, opened);
        });
        group = opened;
      }
      group.length += length;
      group.waiters.push({ length, resolve, reject });
    });
  }

  /** Closes `cluster`'s open group and sends it. */
  #dispatch(cluster: Cluster, group: Group): void {
    this.#open.delete(cluster);
    void this.#send(cluster, group);
  }

  async #send(cluster: Cluster, group: Group): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = await cluster.random(group.length);
    } catch (e) {
      for (const w of group.waiters) w.reject(e);
      return;
    }
    if (bytes.length !== group.length) {
      const e = new Error(`RANDOM answered ${bytes.length} bytes for ${group.length}`);
      for (const w of group.waiters) w.reject(e);
      return;
    }
    let at = 0;
    for (const w of group.waiters) {
      w.resolve(bytes.slice(at, at + w.length));
      at += w.length;
    }
  }
}
