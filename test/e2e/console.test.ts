// The web console in a real browser (docs/console.md): Debian's chromium, driven by playwright-core,
// against `coffer up` started as a user starts it. The whole customer path through the page —
// wrong credentials refused with the API's message, sign in, create a cluster, add an HSM, download
// its CSR, have it signed by a CA made here with the OpenSSL CLI, upload the certificate and trust
// anchor, activate with the `coffer` CLI (as docs/getting-started.md does), watch it become ACTIVE,
// add a second HSM, see a backup, delete and restore it, tag the cluster — asserting what the page
// shows. The secret key must not reach the URL, the tab's storage, cookies or the service's log.
//
// Skipped only when /usr/bin/chromium is missing and COFFER_REQUIRE_BROWSER is not set (CI sets it).
// COFFER_CONSOLE_SCREENSHOTS=<dir> saves the screenshots docs/console.md shows.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { CloudHSMV2Client, DescribeClustersCommand } from '@aws-sdk/client-cloudhsm-v2';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { MAIN_JS, freePort } from '../service/fleet/fleet_support.js';
import { killDevices } from './service_support.js';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** A page event (a table row, a state) within this: generous, the machine may be busy. */
const PAGE_WAIT_MS = 120_000;
/** An HSM starting, a cluster initialising or activating, a backup being taken: minutes on a loaded machine. */
const CLUSTER_WAIT_MS = 480_000;
const TEST_TIMEOUT_MS = 1_800_000;

const missing = !existsSync(CHROMIUM);
const required = process.env['COFFER_REQUIRE_BROWSER'] !== undefined && process.env['COFFER_REQUIRE_BROWSER'] !== '';
const skip = missing && !required ? `${CHROMIUM} is not installed (apt-get install chromium); set COFFER_REQUIRE_BROWSER=1 to fail instead` : false;

const dir = mkdtempSync(join(tmpdir(), 'coffer-console-'));
const data = join(dir, 'data');
const shots = process.env['COFFER_CONSOLE_SCREENSHOTS'] ?? join(dir, 'screenshots');
let up: ChildProcess | undefined;
let context: BrowserContext | undefined;
let origin = '';
let dataPlanePort = 0;
let key = { accessKeyId: '', secretAccessKey: '' };

before(async () => {
  if (skip !== false) return;
  const api = await freePort(['127.0.0.1']);
  const dataPlane = await freePort(['127.0.0.2', '127.0.0.3']);
  dataPlanePort = dataPlane;
  up = spawn(process.execPath, [MAIN_JS, 'up', '--data-dir', data, '--port', String(api), '--data-plane-port', String(dataPlane)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  up.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`coffer up: no ready line in time:\n${stderr}`)), CLUSTER_WAIT_MS);
    up?.once('exit', (code) => reject(new Error(`coffer up exited with ${String(code)}:\n${stderr}`)));
    createInterface({ input: up?.stdout as NodeJS.ReadableStream }).once('line', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  origin = `http://127.0.0.1:${api}`;
  const credentials = readFileSync(join(data, 'credentials'), 'utf8');
  key = { accessKeyId: /aws_access_key_id = (\S+)/.exec(credentials)?.[1] ?? '', secretAccessKey: /aws_secret_access_key = (\S+)/.exec(credentials)?.[1] ?? '' };
  assert.ok(key.accessKeyId !== '' && key.secretAccessKey !== '', 'coffer up wrote its access key');
  mkdirSync(shots, { recursive: true });
  context = await chromium.launchPersistentContext(mkdtempSync(join(dir, 'profile-')), {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, acceptDownloads: true, viewport: { width: 1100, height: 900 },
  });
});

after(async () => {
  await context?.close();
  if (up !== undefined && up.exitCode === null) {
    const exited = new Promise((resolve) => up?.once('exit', resolve));
    up.kill('SIGINT');
    await exited;
  }
  // The fleet's HSM processes outlive a coffer up that did not stop cleanly: none may outlive the test.
  killDevices(dir);
  rmSync(dir, { recursive: true, force: true });
});

/** A GET or other request sent exactly as written (no path normalisation), for the static route. */
function raw(method: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${origin}/`, { method, path }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the console is served under /console/ with its content types and CSP, GET only, and nothing outside its bundle', { skip, timeout: PAGE_WAIT_MS }, async () => {
  const page = await raw('GET', '/console/');
  assert.equal(page.status, 200);
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  const csp = String(page.headers['content-security-policy']);
  for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) assert.ok(csp.includes(directive), `CSP has ${directive}: ${csp}`);
  const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(page.body)?.[1];
  assert.ok(script !== undefined, 'the page loads its bundle from the same origin');
  assert.doesNotMatch(page.body, /<script>|https?:\/\//, 'no inline script and no other origin in the page');
  const js = await raw('GET', script);
  assert.equal(js.status, 200);
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal((await raw('HEAD', script)).status, 200);
  assert.equal((await raw('POST', '/console/')).status, 405);
  assert.equal((await raw('GET', '/console')).status, 308);
  for (const path of ['/console/../../package.json', '/console/%2e%2e/%2e%2e/service.js', '/console/assets/..%2f..%2fconsole_http.js', '/console/..%5c..%5cservice.js', '/console/nothing-here.html', '/console/%00.html']) {
    const answer = await raw('GET', path);
    assert.equal(answer.status, 404, `${path} is refused`);
    assert.doesNotMatch(answer.body, /import|export|coffer/i, `${path} leaks nothing`);
  }
});

async function signIn(page: Page, secretAccessKey: string): Promise<void> {
  await page.fill('input[name=accessKeyId]', key.accessKeyId);
  await page.fill('input[name=secretAccessKey]', secretAccessKey);
  await page.fill('input[name=region]', 'us-east-1');
  await page.click('form[data-testid=signin] button[type=submit]');
}

/** The state the page shows in `scope` (a [data-state] badge) becomes `state`. */
async function stateBecomes(page: Page, scope: string, state: string, timeout = CLUSTER_WAIT_MS): Promise<void> {
  await page.locator(`${scope} [data-state="${state}"]`).first().waitFor({ timeout });
}

test('the whole customer path in a real browser: sign in, create, initialise, activate, scale, back up, delete and restore', { skip, timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(context !== undefined);
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_WAIT_MS);
  page.on('dialog', (d) => void d.accept());
  const failedRequests: string[] = [];
  page.on('requestfailed', (r) => {
    if (r.url().startsWith(origin)) failedRequests.push(r.url());
  });
  await page.goto(`${origin}/console/`);
  await page.screenshot({ path: join(shots, 'signin.png') });

  // Wrong credentials: the API's own answer is shown, and the page stays at sign-in.
  await signIn(page, `${key.secretAccessKey.slice(0, -4)}AAAA`);
  const refused = page.locator('form[data-testid=signin] [data-testid=error]');
  await refused.waitFor();
  assert.match(await refused.innerText(), /InvalidSignatureException.*signature we calculated does not match/s);
  await signIn(page, key.secretAccessKey);
  await page.locator('[data-testid=clusters]').waitFor();
  assert.match(await page.locator('[data-testid=who]').innerText(), new RegExp(key.accessKeyId));

  // A cluster, then its first HSM once it is UNINITIALIZED.
  await page.click('form[data-testid=create-cluster] button[type=submit]');
  const header = page.locator('[data-testid=cluster] h2');
  await header.waitFor();
  const clusterId = /cluster-[2-7a-zA-Z]{11,16}/.exec(await header.innerText())?.[0];
  assert.ok(clusterId !== undefined, 'the page shows the new cluster id');
  await stateBecomes(page, '[data-testid=cluster] h2', 'UNINITIALIZED');
  assert.equal(await page.locator('[data-testid=mode]').innerText(), 'FIPS');
  await page.selectOption('form[data-testid=add-hsm] select', 'us-east-1a');
  await page.click('form[data-testid=add-hsm] button[type=submit]');
  await stateBecomes(page, '[data-testid="hsms-us-east-1a"]', 'ACTIVE');
  assert.match(await page.locator('[data-testid="hsms-us-east-1a"] tbody tr').first().innerText(), /hsm-[2-7a-zA-Z]{11,16}\s+ACTIVE\s+127\.\d+\.\d+\.\d+\s+eni-/);

  // The CSR, downloaded from the page, signed by a CA made here; the certificates uploaded.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=download-csr]')]);
  const csrPath = join(dir, 'cluster.csr');
  await download.saveAs(csrPath);
  assert.match(readFileSync(csrPath, 'utf8'), /^-----BEGIN CERTIFICATE REQUEST-----/);
  await makeCustomerCa(csrPath);
  await page.setInputFiles('input[name=signedCertFile]', join(dir, 'cluster.crt'));
  await page.setInputFiles('input[name=trustAnchorFile]', join(dir, 'customerCA.crt'));
  // The button is enabled once both files are read into the form.
  await page.click('form[data-testid=initialize] button[type=submit]:enabled');
  assert.match(await page.locator('textarea[name=signedCert]').inputValue(), /^-----BEGIN CERTIFICATE-----/);
  await stateBecomes(page, '[data-testid=cluster] h2', 'INITIALIZED');
  await page.locator('[data-cert=ClusterCertificate]').waitFor();
  await checkChains(page);

  // Activation is the CLI's (it talks to the HSMs, which the console never does); the page follows.
  await activate(clusterId);
  await stateBecomes(page, '[data-testid=cluster] h2', 'ACTIVE');

  // A second HSM in the other zone.
  await page.selectOption('form[data-testid=add-hsm] select', 'us-east-1b');
  await page.click('form[data-testid=add-hsm] button[type=submit]');
  await stateBecomes(page, '[data-testid="hsms-us-east-1b"]', 'ACTIVE');
  await stateBecomes(page, '[data-testid="hsms-us-east-1a"]', 'ACTIVE');

  // A backup appears in the timeline (taken on activation and on adding the HSM), with its expiry.
  const backups = page.locator('[data-testid=backups] li[data-backup]');
  await backups.locator('[data-state=READY]').first().waitFor({ timeout: CLUSTER_WAIT_MS });
  const first = backups.filter({ has: page.locator('[data-state=READY]') }).first();
  const backupId = await first.getAttribute('data-backup');
  assert.ok(backupId !== null && /^backup-[2-7a-zA-Z]{11,16}$/.test(backupId));
  assert.match(await first.locator('[data-testid=expiry]').innerText(), /expires \d{4}-\d\d-\d\d .*90-day retention/);
  await page.screenshot({ path: join(shots, 'cluster.png') });

  // Live figures (CofferMonitoringService.DescribeHsmFigures): both HSMs get a series from the
  // service's health probes, with rates once two probes were taken, the journal position and lag,
  // and the newest backup's age.
  const figures = page.locator('[data-testid=panel-figures]');
  for (const az of ['us-east-1a', 'us-east-1b']) {
    const hsmId = await page.locator(`[data-testid="hsms-${az}"] tbody tr`).first().getAttribute('data-hsm');
    const row = figures.locator(`[data-hsm-figures="${hsmId ?? ''}"]`);
    await row.locator('[data-testid=value-ops]').filter({ hasText: /^\d+(\.\d)?$/ }).waitFor({ timeout: CLUSTER_WAIT_MS });
    assert.ok(Number(await row.locator('[data-testid=chart-ops]').getAttribute('data-points')) >= 2, 'a chart of at least two samples');
    assert.match(await row.locator('[data-testid=journal]').innerText(), /^\d+ \((caught up|\d+ behind)\)$/);
    assert.match(await row.locator('[data-testid=value-load]').innerText(), /^\d+\.\d %/);
  }
  assert.match(await figures.locator('[data-testid=backup-age]').innerText(), /^\d+ (s|min|h|d) ago$/);
  assert.match(await figures.locator('[data-testid=journal-head]').innerText(), /^\d+$/);
  await figures.screenshot({ path: join(shots, 'figures.png') });

  // The audit log: the service collects each HSM's log and verifies what it archived; the page shows
  // the verdict and the newest records (the activation the CLI made, on the first HSM's device).
  const audit = page.locator('[data-testid=panel-audit]');
  await audit.locator('[data-testid=audit-verdict].verified').first().waitFor({ timeout: CLUSTER_WAIT_MS });
  await audit.screenshot({ path: join(shots, 'audit.png') });
  assert.match(await audit.locator('[data-testid=audit-verdict]').first().innerText(), /^Verified: records 0–\d+ \(\d+ records, [1-9]\d* signed checkpoints?\)/);
  await audit.locator('tr[data-kind="cluster.activate"] [data-status=signed]').first().waitFor({ timeout: CLUSTER_WAIT_MS });
  await audit.screenshot({ path: join(shots, 'audit.png') });

  // Delete: PENDING_DELETION with the countdown to its purge; restore: READY again.
  const row = page.locator(`[data-testid=backups] li[data-backup="${backupId}"]`);
  await row.getByRole('button', { name: 'Delete' }).click();
  await row.locator('[data-state=PENDING_DELETION]').waitFor();
  assert.match(await row.locator('[data-testid=expiry]').innerText(), /pending deletion: purged in [67]d \d+h \d+m/);
  await row.getByRole('button', { name: 'Restore' }).click();
  await row.locator('[data-state=READY]').waitFor();
  await sharing(page, backupId);

  // Tags, and an API error shown with its message (a tag key the model refuses).
  await page.fill('input[name=tagKey]', 'team');
  await page.fill('input[name=tagValue]', 'payments');
  await page.click('form[data-testid=add-tag] button[type=submit]');
  await page.locator('[data-testid=tags] tr', { hasText: 'payments' }).waitFor();
  await page.fill('input[name=tagKey]', 'x'.repeat(200));
  await page.click('form[data-testid=add-tag] button[type=submit]');
  const tagError = page.locator('[data-testid=panel-tags] [data-testid=error]');
  await tagError.waitFor();
  assert.match(await tagError.innerText(), /ValidationException|CloudHsmInvalidRequestException/);

  // Delete the second HSM; then a new cluster from the backup, opened on its own page.
  await page.locator('[data-testid="hsms-us-east-1b"] tbody tr').getByRole('button', { name: 'Delete' }).click();
  await page.locator('[data-testid="hsms-us-east-1b"] tbody tr').first().waitFor({ state: 'detached', timeout: CLUSTER_WAIT_MS });
  await page.locator(`[data-testid=backups] li[data-backup="${backupId}"] a`).click();
  // Every state of the cluster section the page goes through is recorded: once the new cluster's id
  // is in its heading, it shows that cluster's facts, never for a moment those of the cluster opened
  // before (a poll's answer belongs to the id it asked for).
  await page.evaluate(`{
    const frames = [];
    globalThis.clusterFrames = frames;
    new MutationObserver(() => {
      const section = document.querySelector('[data-testid=cluster]');
      if (section !== null) frames.push(section.textContent ?? '');
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  }`);
  await page.locator('[data-testid=backup-detail] form[data-testid=create-cluster] button[type=submit]').click();
  await page.locator('[data-testid=cluster] h2').filter({ hasNotText: clusterId }).waitFor();
  assert.match(await page.locator('[data-testid=cluster]').innerText(), new RegExp(`Source backup\\s+${backupId}`));
  const frames = await page.evaluate<string[]>('globalThis.clusterFrames');
  const ofNew = frames.filter((f) => !f.includes(clusterId));
  assert.ok(ofNew.length > 0, 'the new cluster\'s section was seen');
  for (const f of ofNew) assert.match(f, new RegExp(`Source backup${backupId}`), `a frame of the new cluster's page with another cluster's facts: ${f.slice(0, 200)}`);

  // The secret stayed in the tab's memory.
  assert.ok(!page.url().includes(key.secretAccessKey));
  const stored = await page.evaluate('JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), document.cookie])');
  assert.ok(typeof stored === 'string' && !stored.includes(key.secretAccessKey), 'nothing of the key in storage or cookies');
  assert.deepEqual((await context.cookies()).length, 0);
  for (const log of logFiles(data)) assert.ok(!readFileSync(log, 'utf8').includes(key.secretAccessKey), `${log} holds no secret`);
  assert.deepEqual(failedRequests, [], 'every request the page made was answered');

  // A tab whose clock is an hour slow signs with a date the service refuses: the page says so.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('form[data-testid=signin]').waitFor();
  await page.clock.setFixedTime(new Date(Date.now() - 3_600_000));
  await signIn(page, key.secretAccessKey);
  const expired = page.locator('form[data-testid=signin] [data-testid=error]');
  await expired.waitFor();
  assert.match(await expired.innerText(), /InvalidSignatureException.*Signature expired/s);
});

/** A backup's detail: a resource policy put, read back and deleted; a copy to a region this
 * service does not know refused with the API's message. */
async function sharing(page: Page, backupId: string): Promise<void> {
  await page.locator(`[data-testid=backups] li[data-backup="${backupId}"] a`).click();
  const detail = page.locator('[data-testid=backup-detail]');
  await detail.locator('h4', { hasText: backupId }).waitFor();
  const policy = JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: ['123456789012'] }, Action: ['cloudhsm:CreateCluster', 'cloudhsm:DescribeBackups'] }] });
  await detail.locator('textarea[name=policy]').fill(policy);
  await detail.getByRole('button', { name: 'Save policy' }).click();
  // Delete is enabled once GetResourcePolicy reads a policy back.
  await detail.locator('button:has-text("Delete policy"):enabled').waitFor();
  assert.match(await detail.locator('textarea[name=policy]').inputValue(), /123456789012/);
  await page.locator('[data-testid=panel-backups]').screenshot({ path: join(shots, 'backups.png') });
  await detail.getByRole('button', { name: 'Delete policy' }).click();
  await detail.locator('button:has-text("Delete policy"):disabled').waitFor();
  await detail.locator('input[name=destinationRegion]').fill('eu-nowhere-9');
  await detail.getByRole('button', { name: 'Copy' }).click();
  const refused = detail.locator('[data-testid=error]');
  await refused.waitFor();
  assert.match(await refused.innerText(), /^\w+Exception: .*\S/);
}

/** The chains, checked in the tab: a wrong root is caught, the right roots verify every link. */
async function checkChains(page: Page): Promise<void> {
  const checks = page.locator('[data-testid=chain-checks] li');
  await page.setInputFiles('input[name=manufacturerRootFile]', join(data, 'operator-root.pem'));
  const wrong = checks.filter({ hasText: 'your manufacturer root' });
  await wrong.waitFor();
  assert.equal(await wrong.getAttribute('data-verified'), 'no');
  assert.match(await wrong.innerText(), /not verified/);
  await page.setInputFiles('input[name=manufacturerRootFile]', join(data, 'manufacturer-root.pem'));
  await page.setInputFiles('input[name=operatorRootFile]', join(data, 'operator-root.pem'));
  await page.setInputFiles('input[name=trustAnchorCheckFile]', join(dir, 'customerCA.crt'));
  await page.locator('[data-testid=chain-checks] li[data-verified=yes]').nth(4).waitFor();
  const texts = await checks.allInnerTexts();
  assert.equal(texts.length, 5, texts.join('\n'));
  for (const t of texts) assert.match(t, /: verified$/);
  assert.equal(await page.locator('[data-testid=chain-checks] li[data-verified=no]').count(), 0);
  await page.locator('[data-testid=panel-certificates]').screenshot({ path: join(shots, 'certificates.png') });
}

/** The customer CA and the signed cluster certificate, as docs/getting-started.md makes them. */
async function makeCustomerCa(csrPath: string): Promise<void> {
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'customerCA.key'), '-out', join(dir, 'customerCA.crt'),
    '-days', '3652', '-subj', '/CN=Console test customer CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  writeFileSync(join(dir, 'cluster-ext.cnf'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
  await run('openssl', ['x509', '-req', '-in', csrPath, '-CA', join(dir, 'customerCA.crt'), '-CAkey', join(dir, 'customerCA.key'), '-CAcreateserial', '-days', '3652',
    '-extfile', join(dir, 'cluster-ext.cnf'), '-out', join(dir, 'cluster.crt')]);
}

/** `coffer cluster activate` with the PreCo password DescribeClusters shows, as the getting-started walk does. */
async function activate(clusterId: string): Promise<void> {
  const client = new CloudHSMV2Client({ region: 'us-east-1', endpoint: origin, credentials: key });
  const described = await client.send(new DescribeClustersCommand({ Filters: { clusterIds: [clusterId] } }));
  client.destroy();
  const preCo = described.Clusters?.[0]?.PreCoPassword;
  assert.ok(preCo !== undefined && preCo !== '');
  const env = {
    ...process.env, AWS_SHARED_CREDENTIALS_FILE: join(data, 'credentials'), AWS_CONFIG_FILE: join(data, 'config'), AWS_PROFILE: 'coffer',
    AWS_ENDPOINT_URL: origin, AWS_REGION: 'us-east-1', COFFER_CLUSTER_ID: clusterId, COFFER_CLUSTER_CONFIG: '', COFFER_DATA_PLANE_PORT: String(dataPlanePort),
  };
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN_JS, 'cluster', 'activate', '--ca', join(dir, 'customerCA.crt')], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), CLUSTER_WAIT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`coffer cluster activate exited with ${String(code)}:\n${out}`));
    });
    child.stdin.end(`${preCo}\nadmin-Passw0rd-1\nadmin-Passw0rd-1\n`);
  });
}

function logFiles(root: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.log')) found.push(join(entry.parentPath, entry.name));
  }
  return found;
}
