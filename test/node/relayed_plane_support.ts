// Test support (not a test file): a relayed cluster of in-process HSMs, each behind a real data plane
// on a TLS socket, and a relay over a real metadata store (test/hsm/state/journal_support.ts
// TestRelay's append and read) that the test can make partial or hostile: hold an HSM back (its
// deliveries wait until it is released), or fork one (its own entries are applied by it alone and
// never appended, so it holds another entry than the journal at those positions).

import { createDevelopmentAuthorities, createDevelopmentCustomerCa } from '../../src/factory/development.js';
import type { Hsm } from '../../src/hsm/device.js';
import { startDataPlane, type DataPlane } from '../../src/node/data_plane.js';
import type { Endpoint } from '../../src/client/node_link.js';
import { TestRelay, activateCluster, clonedCluster } from '../hsm/state/journal_support.js';

export class HostileRelay {
  readonly #devices: readonly Hsm[];
  readonly #journal: TestRelay;
  /** Device indexes the relay delivers nothing to until released. */
  readonly held = new Set<number>();
  /** Device indexes whose own offers go back to them alone, never into the journal. */
  readonly forked = new Set<number>();
  #running = false;
  #pumps: Promise<void>[] = [];
  /** Serialises appends and deliveries, as one control plane would. */
  #chain: Promise<void> = Promise.resolve();

  constructor(devices: readonly Hsm[]) {
    this.#devices = devices;
    this.#journal = TestRelay.open(devices);
  }

  start(): void {
    this.#running = true;
    this.#pumps = this.#devices.map((d, i) => this.#pump(d, i));
  }

  async close(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#pumps);
    await this.#journal.close();
  }

  /** The journal's entries from `fromSeq` (sealed bytes, as stored). */
  entries(fromSeq: bigint): Promise<{ readonly seq: bigint; readonly entry: Uint8Array }[]> {
    return this.#journal.entries(fromSeq);
  }

  /** Delivers to device i again, and catches it up now. */
  async release(i: number): Promise<void> {
    this.held.delete(i);
    await this.#serial(() => this.#deliverAll());
  }

  #serial(fn: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(fn);
    this.#chain = next.catch(() => undefined);
    return next;
  }

  async #deliverAll(): Promise<void> {
    for (const [i, d] of this.#devices.entries()) {
      if (this.held.has(i) || this.forked.has(i)) continue;
      const items = await this.#journal.entries(d.journal.head().seq + 1n);
      if (items.length > 0) await d.journal.deliver(items);
    }
  }

  async #pump(device: Hsm, i: number): Promise<void> {
    while (this.#running) {
      const offer = await device.journal.takeOffer(100);
      if (offer === undefined) continue;
      await this.#serial(async () => {
        if (this.forked.has(i)) {
          await device.journal.deliver([offer]);
          return;
        }
        await this.#journal.append(offer);
        await this.#deliverAll();
      });
    }
  }
}

export interface RelayedPlanes {
  readonly ca: string;
  readonly devices: readonly Hsm[];
  readonly planes: DataPlane[];
  readonly endpoints: readonly Endpoint[];
  readonly relay: HostileRelay;
  close(): Promise<void>;
}

/** `count` relayed HSMs of one activated cluster (admin, crypto users alice and bob: journal_support.ts)
 * behind data planes, with the relay running. */
export async function startRelayedPlanes(count: number): Promise<RelayedPlanes> {
  const authorities = await createDevelopmentAuthorities();
  const customerCa = await createDevelopmentCustomerCa();
  const { devices } = await clonedCluster(authorities, customerCa, count);
  const relay = new HostileRelay(devices);
  relay.start();
  await activateCluster(devices[0] as Hsm);
  const planes = await Promise.all(devices.map((hsm) => startDataPlane({ hsm })));
  return {
    ca: customerCa.certificatePem, devices, planes, relay,
    endpoints: planes.map((p) => ({ host: '127.0.0.1', port: p.port })),
    close: async () => {
      await Promise.all(planes.map((p) => p.close()));
      await relay.close();
      for (const d of devices) d.close();
    },
  };
}
