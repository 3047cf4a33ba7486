// The audit log of each device serving the cluster's HSMs (docs/console.md "Audit log"), from the
// service's signed audit endpoint (docs/audit.md "Endpoint"): the service verifies what it archived
// against the manufacturer and operator roots and says so in a last line; the page shows that
// verdict and the newest records. `coffer audit export` then `coffer audit verify` check the same
// records again offline, without trusting the service.

import { useState } from 'preact/hooks';
import type { Api, Json } from './api.js';
import { ErrorBox, Progress, str, usePoll } from './ui.js';

/** Records shown per device, newest first. */
const RECORDS_SHOWN = 50;

interface Device {
  readonly serial: string;
  readonly hsmId?: string;
  readonly clusterId?: string;
}

function lines(text: string): Json[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Json);
}

export function AuditPanel({ api, cluster }: { api: Api; cluster: Json }) {
  const id = str(cluster.ClusterId);
  const listed = usePoll(async () => lines(await api.getText('/audit')) as unknown as Device[], `audit-${id}`);
  const devices = (listed.data ?? []).filter((d) => d.clusterId === id);
  return (
    <>
      <ErrorBox error={listed.error} />
      {listed.data === undefined ? <Progress label="Loading the audit log…" /> : devices.length === 0
        ? <p class="hint" data-testid="audit-none">No audit records archived yet: the service collects each HSM's log about once a minute.</p>
        : devices.map((d) => <DeviceLog key={d.serial} api={api} device={d} />)}
    </>
  );
}

function DeviceLog({ api, device }: { api: Api; device: Device }) {
  const [from, setFrom] = useState('0');
  const log = usePoll(async () => lines(await api.getText(`/audit/${device.serial}`, { from })), `audit-${device.serial}-${from}`);
  const all = log.data ?? [];
  const verdict = all.find((l) => l.type === 'verification');
  const events = all.filter((l) => l.type === 'event' || l.type === 'checkpoint').reverse().slice(0, RECORDS_SHOWN);
  const failure = verdict?.failure as Json | undefined;
  const next = verdict === undefined ? undefined : String(BigInt(str(verdict.lastSeq) || '0') + 1n);
  return (
    <div class="detail" data-audit={device.serial}>
      <h4>{device.hsmId ?? 'HSM'} <span class="hint">device {device.serial}</span></h4>
      <ErrorBox error={log.error} />
      {verdict === undefined ? <Progress label="Loading…" /> : (
        <p data-testid="audit-verdict" class={verdict.ok === true ? 'verified' : 'error'}>
          {verdict.ok === true
            ? `Verified: records ${str(verdict.firstSeq)}–${str(verdict.lastSeq)} (${String(verdict.records)} records, ${String(verdict.checkpoints)} signed checkpoint${verdict.checkpoints === 1 ? '' : 's'}) chain and signatures check against the manufacturer and operator roots.`
            : `Verification failed at record ${str(failure?.seq)}: ${str(failure?.reason)}.`}
          {' '}<button class="link-dark" disabled={next === undefined} onClick={() => next !== undefined && setFrom(next)}>Newer records</button>
          {from !== '0' ? <button class="link-dark" onClick={() => setFrom('0')}>From the start</button> : null}
        </p>
      )}
      <table data-testid="audit-records">
        <thead><tr><th>Seq</th><th>Time</th><th>Event</th><th>Outcome</th><th>User</th><th>Handles</th><th>Detail</th><th>Status</th></tr></thead>
        <tbody>
          {events.map((e) => (
            <tr key={str(e.seq)} data-kind={e.type === 'checkpoint' ? 'checkpoint' : str(e.kind)}>
              <td>{str(e.seq)}</td>
              <td>{str(e.time).replace('T', ' ').slice(0, 19)}</td>
              <td>{e.type === 'checkpoint' ? 'signed checkpoint' : str(e.kind)}</td>
              <td>{str(e.outcome)}{typeof e.code === 'string' && e.code !== '' ? ` (${e.code})` : ''}</td>
              <td>{str(e.user)}</td>
              <td>{Array.isArray(e.handles) ? e.handles.join(', ') : ''}</td>
              <td>{str(e.detail)}</td>
              <td data-status={str(e.status)}>{str(e.status)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
