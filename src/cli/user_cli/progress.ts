// Progress bars for long operations (many pages of `key list`, a file of records to sign). They go
// to stderr and only when stderr is a terminal, so JSON on stdout and piped output stay clean.

import { SingleBar, Presets } from 'cli-progress';

export interface Progress {
  update(done: number): void;
  stop(): void;
}

const NONE: Progress = { update: () => undefined, stop: () => undefined };

/** Below this many items an operation is over before a bar could say anything useful. */
export const PROGRESS_ITEMS_MIN = 64;

/** A bar on stderr when `enabled` (a TTY) and the work is long enough, otherwise a no-op. */
export function startProgress(label: string, total: number, enabled: boolean): Progress {
  if (!enabled || total < PROGRESS_ITEMS_MIN) return NONE;
  const bar = new SingleBar(
    { format: `${label} [{bar}] {value}/{total}`, stream: process.stderr, hideCursor: true, clearOnComplete: true, etaBuffer: 50 },
    Presets.shades_classic,
  );
  bar.start(total, 0);
  return {
    update: (d) => bar.update(d),
    stop: () => bar.stop(),
  };
}
