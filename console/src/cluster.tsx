// One cluster's page: its state, HSMs per availability zone (add, delete), the initialise flow
// (CSR download, signed certificate and trust anchor upload, the certificates the API reports),
// tags and backups. SECTIONS lists the panels in order; a new panel is one more entry.

import { useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { allPages, type Api, type Json } from './api.js';
import { AuditPanel } from './audit.js';
import { BackupsPanel } from './backups.js';
import { CertificatesPanel } from './certificates.js';
import { FiguresPanel } from './figures.js';
import { Download, ErrorBox, Progress, State, str, time, useAction, usePoll } from './ui.js';

interface PanelProps {
  readonly api: Api;
  readonly cluster: Json;
  readonly refresh: () => void;
  readonly open: (clusterId: string) => void;
}

/** The cluster page's panels, in order. */
const SECTIONS: readonly { readonly id: string; readonly title: string; readonly show: (c: Json) => boolean; readonly Panel: (p: PanelProps) => ComponentChildren }[] = [
  { id: 'hsms', title: 'HSMs', show: () => true, Panel: HsmsPanel },
  { id: 'figures', title: 'Live figures', show: (c) => c.State === 'ACTIVE' || c.State === 'DEGRADED', Panel: FiguresPanel },
  { id: 'initialize', title: 'Initialise', show: (c) => c.State === 'UNINITIALIZED' || c.State === 'INITIALIZE_IN_PROGRESS', Panel: InitializePanel },
  { id: 'certificates', title: 'Certificates', show: (c) => c.Certificates !== undefined, Panel: CertificatesPanel },
  { id: 'backups', title: 'Backups', show: () => true, Panel: BackupsPanel },
  { id: 'tags', title: 'Tags', show: () => true, Panel: TagsPanel },
  { id: 'audit', title: 'Audit log', show: (c) => c.State === 'ACTIVE' || c.State === 'DEGRADED', Panel: AuditPanel },
];

export function ClusterView({ api, clusterId, back, open }: { api: Api; clusterId: string; back: () => void; open: (clusterId: string) => void }) {
  const polled = usePoll(async () => (await api.call('DescribeClusters', { Filters: { clusterIds: [clusterId] } })).Clusters as Json[] | undefined, clusterId);
  const cluster = polled.data?.[0];
  return (
    <>
      <p><a href="#" onClick={(e) => { e.preventDefault(); back(); }}>← Clusters</a></p>
      <ErrorBox error={polled.error} />
      {polled.data === undefined ? <Progress label="Loading…" /> : cluster === undefined ? <p class="error">No cluster {clusterId}.</p> : (
        <>
          <section class="card" data-testid="cluster">
            <h2>{clusterId} <State state={cluster.State} /></h2>
            <dl class="facts">
              <dt>HSM type</dt><dd>{str(cluster.HsmType)}</dd>
              <dt>Mode</dt><dd data-testid="mode">{str(cluster.Mode) || '—'}</dd>
              <dt>State message</dt><dd>{str(cluster.StateMessage) || '—'}</dd>
              <dt>Created</dt><dd>{time(cluster.CreateTimestamp)}</dd>
              <dt>Source backup</dt><dd>{str(cluster.SourceBackupId) || '—'}</dd>
              <dt>Backup retention</dt><dd>{retentionDays(cluster)} days</dd>
              <dt>VPC / security group</dt><dd>{str(cluster.VpcId)} / {str(cluster.SecurityGroup)}</dd>
            </dl>
            <DeleteCluster api={api} cluster={cluster} refresh={polled.refresh} back={back} />
          </section>
          {SECTIONS.filter((s) => s.show(cluster)).map(({ id, title, Panel }) => (
            <section class="card" key={id} data-testid={`panel-${id}`}>
              <h3>{title}</h3>
              <Panel api={api} cluster={cluster} refresh={polled.refresh} open={open} />
            </section>
          ))}
        </>
      )}
    </>
  );
}

export function retentionDays(cluster: Json): number {
  const policy = cluster.BackupRetentionPolicy as Json | undefined;
  const days = Number(policy?.Value ?? 90);
  return Number.isFinite(days) ? days : 90;
}

function DeleteCluster({ api, cluster, refresh, back }: { api: Api; cluster: Json; refresh: () => void; back: () => void }) {
  const action = useAction(refresh);
  const hsms = Array.isArray(cluster.Hsms) ? cluster.Hsms.length : 0;
  if (cluster.State === 'DELETED') return <p><button onClick={back}>Back to clusters</button></p>;
  return (
    <p>
      <button class="danger" disabled={action.busy || hsms > 0} title={hsms > 0 ? 'Delete its HSMs first' : ''}
        onClick={() => { if (window.confirm(`Delete cluster ${str(cluster.ClusterId)}?`)) action.run(() => api.call('DeleteCluster', { ClusterId: cluster.ClusterId })); }}>Delete cluster</button>
      <ErrorBox error={action.error} />
    </p>
  );
}

function HsmsPanel({ api, cluster, refresh }: PanelProps) {
  const zones = Object.keys((cluster.SubnetMapping as Json | undefined) ?? {}).sort();
  const hsms = (Array.isArray(cluster.Hsms) ? cluster.Hsms : []) as Json[];
  const [zone, setZone] = useState('');
  const action = useAction(refresh);
  const add = (e: Event): void => {
    e.preventDefault();
    const az = zone === '' ? zones[0] : zone;
    action.run(() => api.call('CreateHsm', { ClusterId: cluster.ClusterId, AvailabilityZone: az }));
  };
  return (
    <>
      {zones.map((az) => (
        <div class="zone" key={az} data-zone={az}>
          <h4>{az} <span class="hint">{str((cluster.SubnetMapping as Json)[az])}</span></h4>
          <table data-testid={`hsms-${az}`}>
            <thead><tr><th>HSM</th><th>State</th><th>ENI address</th><th>ENI</th><th>Message</th><th /></tr></thead>
            <tbody>
              {hsms.filter((h) => h.AvailabilityZone === az).map((h) => (
                <tr key={str(h.HsmId)} data-hsm={str(h.HsmId)}>
                  <td>{str(h.HsmId)}</td>
                  <td><State state={h.State} /></td>
                  <td>{str(h.EniIp) || '—'}</td>
                  <td>{str(h.EniId) || '—'}</td>
                  <td>{str(h.StateMessage)}</td>
                  <td><button class="danger" disabled={action.busy || h.State === 'DELETE_IN_PROGRESS'}
                    onClick={() => { if (window.confirm(`Delete ${str(h.HsmId)}?`)) action.run(() => api.call('DeleteHsm', { ClusterId: cluster.ClusterId, HsmId: h.HsmId })); }}>Delete</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
      {hsms.some((h) => String(h.State).endsWith('IN_PROGRESS')) ? <Progress label="HSMs are changing; this page follows them." /> : null}
      <form onSubmit={add} class="inline" data-testid="add-hsm">
        <label>Availability zone<select name="zone" value={zone} onChange={(e) => setZone(e.currentTarget.value)}>
          {zones.map((az) => <option key={az} value={az}>{az}</option>)}
        </select></label>
        <button type="submit" disabled={action.busy || cluster.State === 'DELETED'}>Add HSM</button>
      </form>
      <ErrorBox error={action.error} />
    </>
  );
}

function InitializePanel({ api, cluster, refresh }: PanelProps) {
  const certs = (cluster.Certificates as Json | undefined) ?? {};
  const csr = str(certs.ClusterCsr);
  const [signedCert, setSignedCert] = useState('');
  const [trustAnchor, setTrustAnchor] = useState('');
  const action = useAction(refresh);
  if (cluster.State === 'INITIALIZE_IN_PROGRESS') return <Progress label="Initialising…" />;
  if (csr === '') return <p class="hint" data-testid="csr-pending">Add an HSM: the first HSM makes the cluster key and its certificate signing request.</p>;
  const submit = (e: Event): void => {
    e.preventDefault();
    action.run(() => api.call('InitializeCluster', { ClusterId: cluster.ClusterId, SignedCert: signedCert, TrustAnchor: trustAnchor }));
  };
  return (
    <form onSubmit={submit} data-testid="initialize">
      <ol>
        <li>Download the cluster's CSR: <Download name={`${str(cluster.ClusterId)}_ClusterCsr.csr`} text={csr} label="Download CSR" testId="download-csr" /></li>
        <li>Sign it with your CA (the cluster certificate is a CA: basicConstraints CA:TRUE, keyCertSign).</li>
        <li>Upload the signed certificate and your CA's certificate (the trust anchor).</li>
      </ol>
      <PemInput label="Signed cluster certificate" name="signedCert" value={signedCert} set={setSignedCert} />
      <PemInput label="Trust anchor (your CA certificate)" name="trustAnchor" value={trustAnchor} set={setTrustAnchor} />
      <button type="submit" disabled={action.busy || signedCert === '' || trustAnchor === ''}>Initialise</button>
      {action.busy ? <Progress label="Sending…" /> : null}
      <ErrorBox error={action.error} />
    </form>
  );
}

function PemInput({ label, name, value, set }: { label: string; name: string; value: string; set: (v: string) => void }) {
  const load = (e: Event): void => {
    const file = (e.currentTarget as HTMLInputElement).files?.[0];
    if (file !== undefined) void file.text().then(set);
  };
  return (
    <label>{label}
      <input type="file" name={`${name}File`} accept=".pem,.crt,.cer" onChange={load} />
      <textarea name={name} rows={4} value={value} onInput={(e) => set(e.currentTarget.value)} placeholder="-----BEGIN CERTIFICATE-----" spellcheck={false} />
    </label>
  );
}

function TagsPanel({ api, cluster }: PanelProps) {
  const id = str(cluster.ClusterId);
  const tags = usePoll(() => allPages(api, 'ListTags', { ResourceId: id }, 'TagList'), `tags-${id}`);
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const action = useAction(tags.refresh);
  const add = (e: Event): void => {
    e.preventDefault();
    action.run(async () => {
      await api.call('TagResource', { ResourceId: id, TagList: [{ Key: key, Value: value }] });
      setKey('');
      setValue('');
    });
  };
  return (
    <>
      <ErrorBox error={tags.error} />
      <table data-testid="tags">
        <thead><tr><th>Key</th><th>Value</th><th /></tr></thead>
        <tbody>
          {(tags.data ?? []).map((t) => (
            <tr key={str(t.Key)}><td>{str(t.Key)}</td><td>{str(t.Value)}</td>
              <td><button class="danger" disabled={action.busy} onClick={() => action.run(() => api.call('UntagResource', { ResourceId: id, TagKeyList: [t.Key] }))}>Remove</button></td></tr>
          ))}
        </tbody>
      </table>
      <form class="inline" onSubmit={add} data-testid="add-tag">
        <label>Key<input name="tagKey" value={key} onInput={(e) => setKey(e.currentTarget.value)} required /></label>
        <label>Value<input name="tagValue" value={value} onInput={(e) => setValue(e.currentTarget.value)} /></label>
        <button type="submit" disabled={action.busy}>Add tag</button>
      </form>
      <ErrorBox error={action.error} />
    </>
  );
}
