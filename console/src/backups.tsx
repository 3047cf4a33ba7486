// A cluster's backups as a timeline, newest first (DescribeBackups, polled): state, creation,
// expiry under the cluster's retention or never-expires, and for PENDING_DELETION the countdown to
// its purge (DeleteTimestamp). Actions: delete, restore, never-expires on/off, copy to a region,
// create a cluster from it, and the resource policy that shares it.

import { useState } from 'preact/hooks';
import { allPages, type Api, type Json } from './api.js';
import { CreateCluster } from './clusters.js';
import { retentionDays } from './cluster.js';
import { ErrorBox, State, countdown, str, time, useAction, usePoll } from './ui.js';

const DAY_MS = 86_400_000;

export function BackupsPanel({ api, cluster, open }: { api: Api; cluster: Json; open: (clusterId: string) => void }) {
  const id = str(cluster.ClusterId);
  const backups = usePoll(() => allPages(api, 'DescribeBackups', { Filters: { clusterIds: [id] }, SortAscending: false }, 'Backups'), `backups-${id}`);
  const action = useAction(backups.refresh);
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const now = Date.now();
  const chosen = backups.data?.find((b) => b.BackupId === selected);
  return (
    <>
      <ErrorBox error={backups.error} />
      <ol class="timeline" data-testid="backups">
        {(backups.data ?? []).map((b) => (
          <li key={str(b.BackupId)} data-backup={str(b.BackupId)} class={b.BackupId === selected ? 'selected' : ''}>
            <span class="when">{time(b.CreateTimestamp)}</span>
            <a href="#" onClick={(e) => { e.preventDefault(); setSelected(str(b.BackupId)); }}>{str(b.BackupId)}</a>
            <State state={b.BackupState} />
            <span class="expiry" data-testid="expiry">{expiry(b, retentionDays(cluster), now)}</span>
            {b.SourceRegion !== undefined ? <span class="hint">copied from {str(b.SourceRegion)} {str(b.SourceBackup)}</span> : null}
            <span class="actions">
              {b.BackupState === 'PENDING_DELETION'
                ? <button disabled={action.busy} onClick={() => action.run(() => api.call('RestoreBackup', { BackupId: b.BackupId }))}>Restore</button>
                : <button class="danger" disabled={action.busy || b.BackupState !== 'READY'}
                  onClick={() => { if (window.confirm(`Delete ${str(b.BackupId)}? It can be restored for 7 days.`)) action.run(() => api.call('DeleteBackup', { BackupId: b.BackupId })); }}>Delete</button>}
              <button disabled={action.busy || b.BackupState !== 'READY'} onClick={() => action.run(() => api.call('ModifyBackupAttributes', { BackupId: b.BackupId, NeverExpires: b.NeverExpires !== true }))}>
                {b.NeverExpires === true ? 'Let it expire' : 'Never expire'}
              </button>
            </span>
          </li>
        ))}
      </ol>
      {backups.data?.length === 0 ? <p class="hint" data-testid="no-backups">No backup yet: one is taken on activation, when an HSM is added or removed, and every day.</p> : null}
      <ErrorBox error={action.error} />
      {chosen === undefined ? null : <BackupDetail api={api} backup={chosen} open={open} refresh={backups.refresh} />}
    </>
  );
}

/** What a backup's row says about its end. */
export function expiry(b: Json, retentionDaysValue: number, nowMs: number): string {
  if (b.BackupState === 'PENDING_DELETION' && typeof b.DeleteTimestamp === 'number') {
    const purgeMs = b.DeleteTimestamp * 1000;
    return `pending deletion: purged in ${countdown(purgeMs, nowMs)} (${time(b.DeleteTimestamp)})`;
  }
  if (b.NeverExpires === true) return 'never expires';
  if (typeof b.CreateTimestamp !== 'number') return '';
  const expiresMs = b.CreateTimestamp * 1000 + retentionDaysValue * DAY_MS;
  return `expires ${time(expiresMs / 1000)} (${retentionDaysValue}-day retention; the cluster's newest backup is always kept)`;
}

function BackupDetail({ api, backup, open, refresh }: { api: Api; backup: Json; open: (clusterId: string) => void; refresh: () => void }) {
  const [region, setRegion] = useState('');
  const action = useAction(refresh);
  const copy = (e: Event): void => {
    e.preventDefault();
    action.run(() => api.call('CopyBackupToRegion', { BackupId: backup.BackupId, DestinationRegion: region.trim() }));
  };
  return (
    <div class="detail" data-testid="backup-detail">
      <h4>{str(backup.BackupId)}</h4>
      <dl class="facts">
        <dt>ARN</dt><dd>{str(backup.BackupArn) || '—'}</dd>
        <dt>Mode / HSM type</dt><dd>{str(backup.Mode) || '—'} / {str(backup.HsmType) || '—'}</dd>
        <dt>Created</dt><dd>{time(backup.CreateTimestamp)}</dd>
      </dl>
      <form class="inline" onSubmit={copy} data-testid="copy-backup">
        <label>Copy to region<input name="destinationRegion" value={region} onInput={(e) => setRegion(e.currentTarget.value)} required placeholder="us-west-2" /></label>
        <button type="submit" disabled={action.busy}>Copy</button>
      </form>
      <ErrorBox error={action.error} />
      <ResourcePolicy api={api} arn={str(backup.BackupArn)} />
      <CreateCluster api={api} created={open} sourceBackupId={str(backup.BackupId)} />
    </div>
  );
}

function ResourcePolicy({ api, arn }: { api: Api; arn: string }) {
  const polled = usePoll(async () => str((await api.call('GetResourcePolicy', { ResourceArn: arn })).Policy), `policy-${arn}`);
  const [draft, setDraft] = useState<string | undefined>(undefined);
  const action = useAction(() => {
    setDraft(undefined);
    polled.refresh();
  });
  if (arn === '') return null;
  const text = draft ?? polled.data ?? '';
  return (
    <form onSubmit={(e) => { e.preventDefault(); action.run(() => api.call('PutResourcePolicy', { ResourceArn: arn, Policy: text })); }} data-testid="resource-policy">
      <label>Resource policy (shares this backup with other accounts)
        <textarea name="policy" rows={6} value={text} onInput={(e) => setDraft(e.currentTarget.value)} spellcheck={false}
          placeholder={'{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["123456789012"]},"Action":["cloudhsm:CreateCluster","cloudhsm:DescribeBackups"]}]}'} />
      </label>
      <button type="submit" disabled={action.busy || text.trim() === ''}>Save policy</button>
      <button type="button" class="danger" disabled={action.busy || polled.data === ''} onClick={() => action.run(() => api.call('DeleteResourcePolicy', { ResourceArn: arn }))}>Delete policy</button>
      <ErrorBox error={polled.error ?? action.error} />
    </form>
  );
}
