// The Coffer web console (docs/console.md): a client of the public CloudHSMv2 API, signing in the
// tab with the access key typed at sign-in. Views: sign-in, the clusters list, one cluster (HSMs per
// availability zone, initialisation, tags, backups). The cluster page is a list of sections so that
// further panels (per-HSM live figures, the audit log) slot in beside the others.

import { render } from 'preact';
import { useState } from 'preact/hooks';
import { connect, type Api } from './api.js';
import { ClustersView } from './clusters.js';
import { ClusterView } from './cluster.js';
import { ErrorBox, Progress } from './ui.js';
import './style.css';

function SignIn({ onSignedIn }: { onSignedIn: (api: Api) => void }) {
  const [accessKeyId, setAccessKeyId] = useState('');
  const [secretAccessKey, setSecret] = useState('');
  const [region, setRegion] = useState('us-east-1');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const submit = (e: Event): void => {
    e.preventDefault();
    const api = connect({ accessKeyId: accessKeyId.trim(), secretAccessKey, region: region.trim() }, window.location.origin);
    setBusy(true);
    setError(undefined);
    // Signing in is one signed call: the API itself says whether the key is good.
    api.call('DescribeClusters', { MaxResults: 1 }).then(() => {
      setSecret('');
      onSignedIn(api);
    }, (err: unknown) => {
      setBusy(false);
      setError(err);
    });
  };
  return (
    <form class="card signin" onSubmit={submit} data-testid="signin" autocomplete="off">
      <h2>Sign in</h2>
      <p class="hint">The key signs every call in this tab (SigV4) and is kept only in its memory: it is not sent, stored or put in the address.</p>
      <label>Access key ID<input name="accessKeyId" value={accessKeyId} onInput={(e) => setAccessKeyId(e.currentTarget.value)} required spellcheck={false} /></label>
      <label>Secret access key<input name="secretAccessKey" type="password" autocomplete="off" value={secretAccessKey} onInput={(e) => setSecret(e.currentTarget.value)} required /></label>
      <label>Region<input name="region" value={region} onInput={(e) => setRegion(e.currentTarget.value)} required spellcheck={false} /></label>
      <button type="submit" disabled={busy}>Sign in</button>
      {busy ? <Progress label="Checking the key…" /> : null}
      <ErrorBox error={error} />
    </form>
  );
}

function App() {
  const [api, setApi] = useState<Api | undefined>(undefined);
  const [clusterId, setClusterId] = useState<string | undefined>(undefined);
  return (
    <>
      <header>
        <h1><a href="#" onClick={(e) => { e.preventDefault(); setClusterId(undefined); }}>Coffer</a></h1>
        {api === undefined ? null : (
          <span class="who" data-testid="who">
            {api.accessKeyId} · {api.region}
            <button class="link" onClick={() => { setApi(undefined); setClusterId(undefined); }}>Sign out</button>
          </span>
        )}
      </header>
      <main>
        {api === undefined
          ? <SignIn onSignedIn={setApi} />
          : clusterId === undefined
            ? <ClustersView api={api} open={setClusterId} />
            : <ClusterView api={api} clusterId={clusterId} back={() => setClusterId(undefined)} open={setClusterId} />}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
