// The cluster's certificates as DescribeClusters reports them, and their chains checked in the tab
// with WebCrypto (x509.ts): the HSM's identity certificate against the manufacturer root the API
// reports, the operator's certificate for the same device key, and — once the user gives the roots
// they hold themselves — against those, which is the check that matters (a service could report a
// root of its own making). Nothing is sent anywhere; the files are read in the tab.

import { useEffect, useState } from 'preact/hooks';
import type { Json } from './api.js';
import { Download, str } from './ui.js';
import { fingerprint, parseCertificate, sameKey, verifySignedBy, type Certificate, type Verdict } from './x509.js';

const CERTIFICATE_NAMES: readonly [string, string][] = [
  ['HsmCertificate', "the HSM's identity certificate, issued by the manufacturer root"],
  ['AwsHardwareCertificate', "the operator's certificate for the same device key, issued by the operator root"],
  ['ManufacturerHardwareCertificate', 'the manufacturer root'],
  ['ClusterCertificate', 'the cluster certificate your CA signed'],
];

interface Check {
  readonly label: string;
  readonly verdict: Verdict;
}

type Roots = Partial<Record<'manufacturer' | 'operator' | 'anchor', string>>;

function parse(pem: string | undefined): Certificate | undefined {
  if (pem === undefined || pem === '') return undefined;
  try {
    return parseCertificate(pem);
  } catch {
    return undefined;
  }
}

async function signed(label: string, cert: Certificate | undefined, issuer: Certificate | undefined, issuerPem: string | undefined): Promise<Check | undefined> {
  if (cert === undefined || issuerPem === undefined || issuerPem === '') return undefined;
  if (issuer === undefined) return { label, verdict: { ok: false, why: 'the issuer is not a readable PEM certificate' } };
  try {
    return { label, verdict: await verifySignedBy(cert, issuer) };
  } catch (e) {
    return { label, verdict: { ok: false, why: e instanceof Error ? e.message : 'unreadable' } };
  }
}

async function checks(certs: Json, roots: Roots): Promise<Check[]> {
  const hsm = parse(str(certs.HsmCertificate));
  const operatorHw = parse(str(certs.AwsHardwareCertificate));
  const cluster = parse(str(certs.ClusterCertificate));
  const reportedRoot = str(certs.ManufacturerHardwareCertificate);
  const found = await Promise.all([
    signed('HsmCertificate is signed by the manufacturer root the API reports', hsm, parse(reportedRoot), reportedRoot),
    signed('HsmCertificate is signed by your manufacturer root', hsm, parse(roots.manufacturer), roots.manufacturer),
    signed('AwsHardwareCertificate is signed by your operator root', operatorHw, parse(roots.operator), roots.operator),
    signed('ClusterCertificate is signed by your CA (trust anchor)', cluster, parse(roots.anchor), roots.anchor),
  ]);
  const out = found.filter((c): c is Check => c !== undefined);
  if (hsm !== undefined && operatorHw !== undefined) {
    out.splice(1, 0, { label: 'HsmCertificate and AwsHardwareCertificate certify the same device key', verdict: sameKey(hsm, operatorHw) ? { ok: true } : { ok: false, why: 'the keys differ' } });
  }
  return out;
}

export function CertificatesPanel({ cluster }: { cluster: Json }) {
  const certs = (cluster.Certificates as Json | undefined) ?? {};
  const [roots, setRoots] = useState<Roots>({});
  const [results, setResults] = useState<Check[] | undefined>(undefined);
  const [rootPrint, setRootPrint] = useState('');
  const key = JSON.stringify([certs, roots]);
  useEffect(() => {
    let live = true;
    void checks(certs, roots).then((r) => live && setResults(r));
    const root = parse(str(certs.ManufacturerHardwareCertificate));
    if (root !== undefined && globalThis.crypto?.subtle !== undefined) void fingerprint(root).then((f) => live && setRootPrint(f));
    return () => {
      live = false;
    };
  }, [key]);
  const load = (which: keyof Roots) => (e: Event): void => {
    const file = (e.currentTarget as HTMLInputElement).files?.[0];
    if (file !== undefined) void file.text().then((pem) => setRoots((r) => ({ ...r, [which]: pem })));
  };
  return (
    <>
      {CERTIFICATE_NAMES.filter(([field]) => str(certs[field]) !== '').map(([field, about]) => (
        <details key={field} data-cert={field}>
          <summary>{field} — {about} <Download name={`${field}.pem`} text={str(certs[field])} label="Download" testId={`download-${field}`} /></summary>
          <pre>{str(certs[field])}</pre>
        </details>
      ))}
      {rootPrint === '' ? null : <p class="hint">Reported manufacturer root, SHA-256: <code data-testid="root-fingerprint">{rootPrint}</code></p>}
      <div class="inline-files">
        <label>Your manufacturer root<input type="file" name="manufacturerRootFile" accept=".pem,.crt" onChange={load('manufacturer')} /></label>
        <label>Your operator root<input type="file" name="operatorRootFile" accept=".pem,.crt" onChange={load('operator')} /></label>
        <label>Your CA (trust anchor)<input type="file" name="trustAnchorCheckFile" accept=".pem,.crt" onChange={load('anchor')} /></label>
      </div>
      <ul class="checks" data-testid="chain-checks">
        {(results ?? []).map((c) => (
          <li key={c.label} class={c.verdict.ok ? 'ok' : 'bad'} data-verified={c.verdict.ok ? 'yes' : 'no'}>
            {c.verdict.ok ? '✔ ' : '✘ '}{c.label}{c.verdict.ok ? ': verified' : `: not verified — ${c.verdict.why}`}
          </li>
        ))}
      </ul>
      <p class="hint">Checked in this tab with WebCrypto; the files you choose are read here and never sent.</p>
    </>
  );
}
