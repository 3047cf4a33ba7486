// Live figures per HSM (docs/console.md "Live figures"): what the service's health probes saw, from
// CofferMonitoringService.DescribeHsmFigures, drawn as small charts that move with each poll —
// operations per second, p99 latency, load against capacity, BUSY answers, the journal position
// and its lag behind the journal store, and the age of the cluster's newest backup. The figures
// come from the service that orchestrates the region; they start empty after it restarts.

import type { ComponentChildren } from 'preact';
import { MONITORING_PREFIX, type Api, type Json } from './api.js';
import { ErrorBox, Progress, str, usePoll } from './ui.js';

const CHART_WIDTH = 160;
const CHART_HEIGHT = 36;

interface Sample {
  readonly Time: number;
  readonly OpsPerSecond: number | null;
  readonly BusyPerSecond: number | null;
  readonly P99LatencyMs: number | null;
  readonly P99Above: boolean;
  readonly LoadPermille: number;
  readonly CapacityOpsPerSecond: number;
  readonly JournalPosition: string;
}

export function FiguresPanel({ api, cluster }: { api: Api; cluster: Json }) {
  const id = str(cluster.ClusterId);
  const polled = usePoll(() => api.call('DescribeHsmFigures', { ClusterId: id }, MONITORING_PREFIX), `figures-${id}`);
  const data = polled.data;
  const hsms = (Array.isArray(data?.Hsms) ? data.Hsms : []) as Json[];
  return (
    <>
      <ErrorBox error={polled.error} />
      {data === undefined ? <Progress label="Loading figures…" /> : (
        <>
          <dl class="facts" data-testid="cluster-figures">
            <dt>Journal head</dt><dd data-testid="journal-head">{data.JournalHead === null ? 'not relayed' : str(data.JournalHead)}</dd>
            <dt>Newest backup</dt><dd data-testid="backup-age">{typeof data.NewestBackupAgeSeconds === 'number' ? `${age(data.NewestBackupAgeSeconds)} ago` : 'none'}</dd>
          </dl>
          {hsms.length === 0 ? <p class="hint">No HSMs.</p> : (
            <table data-testid="figures">
              <thead><tr><th>HSM</th><th>Operations/s</th><th>p99 latency</th><th>Load</th><th>BUSY/s</th><th>Journal</th></tr></thead>
              <tbody>{hsms.map((h) => <HsmRow key={str(h.HsmId)} hsm={h} />)}</tbody>
            </table>
          )}
          <p class="hint">One sample per health probe ({Number(data.ProbeIntervalMs) / 1000} s); rates and p99 are over the interval between two probes.</p>
        </>
      )}
    </>
  );
}

function HsmRow({ hsm }: { hsm: Json }) {
  const samples = (Array.isArray(hsm.Samples) ? hsm.Samples : []) as Sample[];
  const last = samples[samples.length - 1];
  const lag = typeof hsm.JournalLag === 'number' ? hsm.JournalLag : null;
  return (
    <tr data-hsm-figures={str(hsm.HsmId)}>
      <td>{str(hsm.HsmId)}<br /><span class="hint">{str(hsm.AvailabilityZone)} · {str(hsm.EniIp)}</span></td>
      <td><Figure testId="ops" values={samples.map((s) => s.OpsPerSecond)} text={num(last?.OpsPerSecond)} /></td>
      <td><Figure testId="p99" values={samples.map((s) => s.P99LatencyMs)} text={last?.P99LatencyMs == null ? '—' : `${last.P99Above ? '> ' : '≤ '}${num(last.P99LatencyMs)} ms`} /></td>
      <td><Figure testId="load" values={samples.map((s) => s.LoadPermille / 10)} max={100}
        text={last === undefined ? '—' : `${(last.LoadPermille / 10).toFixed(1)} %${last.CapacityOpsPerSecond > 0 ? ` of ${last.CapacityOpsPerSecond} ops/s` : ''}`} /></td>
      <td><Figure testId="busy" values={samples.map((s) => s.BusyPerSecond)} text={num(last?.BusyPerSecond)} /></td>
      <td data-testid="journal">{last === undefined ? '—' : `${last.JournalPosition}${lag === null ? '' : lag === 0 ? ' (caught up)' : ` (${lag} behind)`}`}</td>
    </tr>
  );
}

/** A value with its sparkline: the series as a polyline scaled to its own maximum (or `max`). */
function Figure({ values, text, max, testId }: { values: readonly (number | null)[]; text: string; max?: number; testId: string }): ComponentChildren {
  const known = values.map((v) => v ?? 0);
  const top = Math.max(max ?? 0, ...known, 1e-9);
  const step = known.length > 1 ? CHART_WIDTH / (known.length - 1) : 0;
  const points = known.map((v, i) => `${(i * step).toFixed(1)},${(CHART_HEIGHT - (v / top) * (CHART_HEIGHT - 2) - 1).toFixed(1)}`).join(' ');
  return (
    <span class="figure">
      <svg width={CHART_WIDTH} height={CHART_HEIGHT} viewBox={`0 0 ${CHART_WIDTH} ${CHART_HEIGHT}`} role="img" aria-label={`${testId} chart`} data-testid={`chart-${testId}`} data-points={known.length}>
        <rect x="0" y="0" width={CHART_WIDTH} height={CHART_HEIGHT} fill="#f3f5f8" />
        {known.length > 1 ? <polyline points={points} fill="none" stroke="#2f6fde" stroke-width="1.5" /> : null}
      </svg>
      <span class="figure-value" data-testid={`value-${testId}`}>{text}</span>
    </span>
  );
}

function num(v: number | null | undefined): string {
  if (v === null || v === undefined) return '—';
  return v >= 100 ? String(Math.round(v)) : v.toFixed(1);
}

function age(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} d`;
}
