// Small pieces every view of the console shares: polling, the error box that shows the API's own
// message, times and countdowns, downloads.

import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { ApiCallError } from './api.js';

/** How often a view asks the API again while it is open: long operations move on their own. */
export const POLL_INTERVAL_MS = 3_000;

export interface Polled<T> {
  readonly data: T | undefined;
  readonly error: unknown;
  readonly refresh: () => void;
}

/**
 * Calls `load` now, every POLL_INTERVAL_MS, and on refresh(); keeps the last good answer. An answer
 * belongs to the `key` it was loaded for: when the key changes (another cluster opened), the view
 * gets no data until the new key's first answer, never the previous key's answer under the new key.
 */
export function usePoll<T>(load: () => Promise<T>, key: string): Polled<T> {
  const [answer, setAnswer] = useState<{ readonly key: string; readonly data: T } | undefined>(undefined);
  const [failure, setFailure] = useState<{ readonly key: string; readonly error: unknown } | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let live = true;
    const run = (): void => {
      loadRef.current().then((data) => {
        if (!live) return;
        setAnswer({ key, data });
        setFailure(undefined);
      }, (error: unknown) => {
        if (live) setFailure({ key, error });
      });
    };
    run();
    const timer = setInterval(run, POLL_INTERVAL_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [key, tick]);
  const refresh = useCallback(() => setTick((t) => t + 1), []);
  return { data: answer?.key === key ? answer.data : undefined, error: failure?.key === key ? failure.error : undefined, refresh };
}

/** Runs one action at a time with its error shown; `done` runs after success. */
export function useAction(done: () => void): { busy: boolean; error: unknown; run: (action: () => Promise<unknown>) => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const run = (action: () => Promise<unknown>): void => {
    setBusy(true);
    setError(undefined);
    action().then(() => {
      setBusy(false);
      done();
    }, (e: unknown) => {
      setBusy(false);
      setError(e);
    });
  };
  return { busy, error, run };
}

export function ErrorBox({ error }: { error: unknown }): ComponentChildren {
  if (error === undefined) return null;
  const type = error instanceof ApiCallError ? error.type : 'Error';
  const message = error instanceof Error ? error.message : 'unexpected failure';
  return <p class="error" role="alert" data-testid="error"><strong>{type}</strong>: {message}</p>;
}

export function Progress({ label }: { label: string }): ComponentChildren {
  return <span class="progress" role="status"><span class="spinner" aria-hidden="true" />{label}</span>;
}

/** API timestamps are epoch seconds. */
export function time(seconds: unknown): string {
  return typeof seconds === 'number' ? `${new Date(seconds * 1000).toISOString().slice(0, 19).replace('T', ' ')}Z` : '—';
}

/** "6d 23h 59m": what is left until `untilMs`. */
export function countdown(untilMs: number, nowMs: number): string {
  const left = Math.max(0, untilMs - nowMs);
  const minutes = Math.floor(left / 60_000);
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  return `${days}d ${hours}h ${minutes % 60}m`;
}

export function State({ state }: { state: unknown }): ComponentChildren {
  const s = typeof state === 'string' ? state : 'UNKNOWN';
  return <span class={`state state-${s.toLowerCase()}`} data-state={s}>{s}</span>;
}

/** A text file offered for download from memory (a Blob URL: nothing leaves the tab). */
export function Download({ name, text, label, testId }: { name: string; text: string; label: string; testId: string }): ComponentChildren {
  const [href, setHref] = useState('');
  useEffect(() => {
    const url = URL.createObjectURL(new Blob([text], { type: 'application/x-pem-file' }));
    setHref(url);
    return () => URL.revokeObjectURL(url);
  }, [text]);
  return <a class="button" href={href} download={name} data-testid={testId}>{label}</a>;
}

export function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
