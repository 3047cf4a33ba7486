// The clusters list (DescribeClusters, polled) and CreateCluster, optionally from a backup.

import { useState } from 'preact/hooks';
import { allPages, type Api, type Json } from './api.js';
import { ErrorBox, Progress, State, str, time, useAction, usePoll } from './ui.js';

export function ClustersView({ api, open }: { api: Api; open: (clusterId: string) => void }) {
  const clusters = usePoll(() => allPages(api, 'DescribeClusters', {}, 'Clusters'), 'clusters');
  return (
    <>
      <section class="card">
        <h2>Clusters</h2>
        <ErrorBox error={clusters.error} />
        {clusters.data === undefined ? <Progress label="Loading…" /> : (
          <table data-testid="clusters">
            <thead><tr><th>Cluster</th><th>State</th><th>HSM type</th><th>Mode</th><th>HSMs</th><th>Created</th></tr></thead>
            <tbody>
              {clusters.data.map((c) => (
                <tr key={str(c.ClusterId)} data-cluster={str(c.ClusterId)}>
                  <td><a href="#" onClick={(e) => { e.preventDefault(); open(str(c.ClusterId)); }}>{str(c.ClusterId)}</a></td>
                  <td><State state={c.State} /></td>
                  <td>{str(c.HsmType)}</td>
                  <td>{str(c.Mode) || '—'}</td>
                  <td>{Array.isArray(c.Hsms) ? c.Hsms.length : 0}</td>
                  <td>{time(c.CreateTimestamp)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {clusters.data?.length === 0 ? <p class="hint">No cluster yet.</p> : null}
      </section>
      <CreateCluster api={api} created={(id) => { clusters.refresh(); open(id); }} />
    </>
  );
}

export function CreateCluster({ api, created, sourceBackupId = '' }: { api: Api; created: (clusterId: string) => void; sourceBackupId?: string }) {
  const [hsmType, setHsmType] = useState('hsm2m.medium');
  const [subnets, setSubnets] = useState('subnet-0a1b2c3d4e5f60001 subnet-0a1b2c3d4e5f60002');
  const [mode, setMode] = useState('');
  const [source, setSource] = useState(sourceBackupId);
  const action = useAction(() => undefined);
  const submit = (e: Event): void => {
    e.preventDefault();
    const input: Json = { HsmType: hsmType.trim(), SubnetIds: subnets.split(/[\s,]+/).filter((s) => s !== '') };
    if (source.trim() !== '') input.SourceBackupId = source.trim();
    if (mode !== '') input.Mode = mode;
    action.run(async () => {
      const answer = await api.call('CreateCluster', input);
      const id = str((answer.Cluster as Json | undefined)?.ClusterId);
      if (id !== '') created(id);
    });
  };
  return (
    <form class="card" onSubmit={submit} data-testid="create-cluster">
      <h2>Create a cluster</h2>
      <label>HSM type<input name="hsmType" value={hsmType} onInput={(e) => setHsmType(e.currentTarget.value)} required /></label>
      <label>Subnet IDs (one per availability zone)<input name="subnetIds" value={subnets} onInput={(e) => setSubnets(e.currentTarget.value)} required /></label>
      <label>Mode<select name="mode" value={mode} onChange={(e) => setMode(e.currentTarget.value)}>
        <option value="">Service default</option><option value="FIPS">FIPS</option><option value="NON_FIPS">NON_FIPS</option>
      </select></label>
      <label>From backup (optional)<input name="sourceBackupId" value={source} onInput={(e) => setSource(e.currentTarget.value)} placeholder="backup-… or its ARN" /></label>
      <button type="submit" disabled={action.busy}>Create cluster</button>
      {action.busy ? <Progress label="Creating…" /> : null}
      <ErrorBox error={action.error} />
    </form>
  );
}
