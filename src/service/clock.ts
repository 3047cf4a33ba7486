// Time for the control plane (CONTRIBUTING.md rule 6): backup schedules, retention, purges and
// health probes read this port, so tests drive them with a manual clock instead of waiting.

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };
