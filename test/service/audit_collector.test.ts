// The control plane's side of the audit log (src/service/audit_collector.ts, audit_http.ts,
// docs/audit.md "Collection", "Endpoint"): pages of a served node's log collected over the real
// management interface into a filesystem archive, write-once and contiguous across collections; a
// page altered on its way is refused and nothing is archived; the endpoint answers SigV4-signed
// requests (the AWS SDK's signer) with JSON lines that verify, refuses unsigned and unauthorised
// ones, and its export verifies again offline with the same code `coffer audit verify` runs.

import type { AccessKey } from '../../src/service/api/sigv4.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagementClient } from '../../src/management/client.js';
import { createDevelopmentAuthorities, issueManagementClientCertificate, saveDevelopmentAuthorities } from '../../src/factory/development.js';
import { decodeAuditBundle, decodeAuditRecord, encodeAuditBundle, encodeAuditRecord } from '../../src/formats/audit_record.js';
import { parseAuditJsonLines } from '../../src/formats/audit_json.js';
import { verifyAuditBundles } from '../../src/formats/audit_verify.js';
import { pemOf } from '../../src/formats/x509.js';
import { serveNode } from '../../src/node/serve.js';
import { createLogger } from '../../src/node/log.js';
import { AuditCollector, AuditPageRefused } from '../../src/service/audit_collector.js';
import { AUDIT_ACTION, withAuditLog } from '../../src/service/audit_http.js';
import { openFsArchive } from '../../src/storage/archive_fs.js';
import { ADMIN, READER, REGION, rawRequest, signedRequest } from './api/api_support.js';

const log = createLogger({ level: 'silent' });
const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

/** The `coffer` command as a child process, not blocking this process (which serves the endpoint it calls). */
function coffer(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { encoding: 'utf8', env }, (error, stdout, stderr) => {
      resolve({ status: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

test('the control plane collects a node\'s audit log into the archive and serves it as verifiable JSON lines', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-audit-service-'));
  const authorities = await createDevelopmentAuthorities();
  saveDevelopmentAuthorities(authorities, join(dir, 'authorities'));
  const credential = await issueManagementClientCertificate(authorities.operator, 'audit collector test');
  const rootsPem = { manufacturerRootPem: pemOf(authorities.manufacturer.rootCertificate), operatorRootPem: pemOf(authorities.operator.rootCertificate) };
  const roots = { manufacturerRoot: rootsPem.manufacturerRootPem, operatorRoot: rootsPem.operatorRootPem };
  const node = await serveNode({ dataDir: join(dir, 'node'), development: true, log, authoritiesDir: join(dir, 'authorities'), managementPort: 0 });
  const archive = await openFsArchive({ directory: join(dir, 'archive') });
  // Two keys granted only the audit action: one of the account whose HSM the device serves, one of another.
  const owner: AccessKey = { ...READER, accessKeyId: 'AKIAAUDITOWNER000001', accountId: '123456789012', actions: [AUDIT_ACTION] };
  const stranger: AccessKey = { ...READER, accessKeyId: 'AKIAAUDITSTRANGER001', accountId: '210987654321', actions: [AUDIT_ACTION] };
  let servedSerial = '';
  const server = createServer(withAuditLog((_req, res) => res.writeHead(404).end(), {
    collector: new AuditCollector({ archive, roots, clock: { nowMs: () => Date.now() }, log }), accessKeys: [ADMIN, READER, owner, stranger], region: REGION, roots, clock: { nowMs: () => Date.now() }, logger: log,
    devicesOf: (accountId) => Promise.resolve(accountId === owner.accountId ? [{ serial: servedSerial, hsmId: 'hsm-auditowner234', clusterId: 'cluster-auditowner234' }] : []),
  }));
  try {
    const hsm = node.hsm;
    const serial = hsm.provisioning.identity().serial;
    servedSerial = serial;
    await hsm.initialiseUsers('preco-password-8', 'appliance-credential-888');
    await hsm.activate('preco-password-8', 'admin-password-88');
    await assert.rejects(hsm.openSession().login('admin', 'wrong-password-88'));
    assert.ok(node.management !== undefined);
    const client = new ManagementClient({ host: '127.0.0.1', port: node.management.port, ...credential, ...rootsPem });
    const collector = new AuditCollector({ archive, roots, clock: { nowMs: () => Date.now() }, log });

    const first = await collector.collect(serial, client);
    assert.equal(first.pages, 1);
    const admin = hsm.openSession();
    await admin.login('admin', 'admin-password-88');
    await admin.createUser('carol', 'carol-password-8', 'crypto-user');
    const second = await collector.collect(serial, client);
    assert.equal(second.pages, 1);
    assert.equal((await collector.collect(serial, client)).pages, 0, 'nothing new: nothing archived');
    const chunks = await collector.chunks(serial);
    assert.equal(chunks.length, 2);
    assert.equal(chunks[0]?.from, 0n);
    assert.equal(chunks[1]?.from, (chunks[0]?.to ?? -1n) + 1n, 'contiguous');
    assert.deepEqual((await archive.list('audit/')).map((o) => o.key), chunks.map((c) => c.key));
    const archived = await collector.read(serial, 0n, 100);
    const checked = verifyAuditBundles({ bundles: archived, ...roots, expectedSerial: serial, atMs: Date.now() });
    assert.equal(checked.ok, true, JSON.stringify(checked.failure));

    // A page altered on its way (the management answer tampered with): refused, nothing archived.
    await admin.createUser('dave', 'dave-password-8', 'crypto-user');
    const tampering = {
      auditPage: async (from: bigint, max: number): Promise<Uint8Array> => {
        const b = decodeAuditBundle(await client.auditPage(from, max));
        const records = [...b.records];
        const r = decodeAuditRecord(records[0] as Uint8Array);
        if (r.type === 'event') records[0] = encodeAuditRecord({ ...r, event: { ...r.event, detail: 'nobody' } });
        return encodeAuditBundle({ ...b, records });
      },
    };
    await assert.rejects(collector.collect(serial, tampering), (e: unknown) => e instanceof AuditPageRefused);
    assert.equal((await collector.chunks(serial)).length, 2);
    assert.equal((await collector.collect(serial, client)).pages, 1, 'the honest page is taken at the next collection');
    client.close();

    // The endpoint.
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const get = (path: string, key = ADMIN): ReturnType<typeof signedRequest> => signedRequest(url, { method: 'GET', path, body: '', key });
    const list = await get('/audit');
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(list.text.trim().split('\n').map((l) => JSON.parse(l) as unknown), [{ serial }]);
    const answer = await get(`/audit/${serial}`);
    assert.equal(answer.status, 200, answer.text);
    assert.match(String(answer.headers['content-type']), /application\/x-ndjson/);
    const lines = answer.text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const verdict = lines.at(-1);
    assert.equal(verdict?.['type'], 'verification');
    assert.equal(verdict?.['ok'], true);
    assert.equal(verdict?.['serial'], serial);
    assert.ok(lines.some((l) => l['type'] === 'event' && l['kind'] === 'login' && l['outcome'] === 'failed' && l['user'] === 'admin' && l['code'] === 'COFFER_AUTH_FAILED' && l['status'] === 'signed'));
    assert.ok(lines.some((l) => l['type'] === 'event' && l['kind'] === 'user.create' && l['detail'] === 'carol' && l['user'] === 'admin'));
    for (const secret of ['admin-password-88', 'carol-password-8', 'wrong-password-88', 'preco-password-8']) assert.ok(!answer.text.includes(secret));
    const again = verifyAuditBundles({ bundles: parseAuditJsonLines(answer.text), ...roots, atMs: Date.now() });
    assert.equal(again.ok, true, 'the export verifies offline');
    const later = await signedRequest(url, { method: 'GET', path: `/audit/${serial}`, query: { from: (chunks[1]?.from ?? 0n).toString() }, body: '' });
    assert.equal(later.status, 200, later.text);
    assert.equal((JSON.parse(later.text.trim().split('\n').at(-1) ?? '{}') as { firstSeq?: string }).firstSeq, chunks[1]?.from.toString(), 'from a position: from its chunk on');

    // `coffer audit export` (the real command), then `coffer audit verify` on its file.
    const out = join(dir, 'export.jsonl');
    const env = { ...process.env, AWS_ACCESS_KEY_ID: ADMIN.accessKeyId, AWS_SECRET_ACCESS_KEY: ADMIN.secretAccessKey, AWS_REGION: REGION };
    const exported = await coffer(['audit', 'export', serial, '--endpoint-url', url, '--out', out], env);
    assert.equal(exported.status, 0, exported.stderr);
    writeFileSync(join(dir, 'm.pem'), rootsPem.manufacturerRootPem);
    writeFileSync(join(dir, 'o.pem'), rootsPem.operatorRootPem);
    const verified = await coffer(['audit', 'verify', out, '--manufacturer-root', join(dir, 'm.pem'), '--operator-root', join(dir, 'o.pem'), '--json']);
    assert.equal(verified.status, 0, verified.stdout + verified.stderr);
    assert.equal((JSON.parse(verified.stdout) as { lastSeq?: string }).lastSeq, String(verdict?.['lastSeq']));
    const none = await coffer(['audit', 'export', 'CFR-0000000000000000', '--endpoint-url', url], env);
    assert.equal(none.status, 1);
    assert.match(none.stderr, /COFFER_SERVICE_REFUSED/);

    assert.equal((await get(`/audit/${serial}`, READER)).status, 403, `a key without ${AUDIT_ACTION}`);
    // A key of the account the device serves sees its log, named with its HSM; another account's does not.
    const owned = await get('/audit', owner);
    assert.deepEqual(owned.text.trim().split('\n').map((l) => JSON.parse(l) as unknown), [{ serial, hsmId: 'hsm-auditowner234', clusterId: 'cluster-auditowner234' }]);
    assert.equal((await get(`/audit/${serial}`, owner)).status, 200);
    assert.equal((await get('/audit', stranger)).text, '', 'another account lists nothing');
    const foreign = await get(`/audit/${serial}`, stranger);
    assert.deepEqual([foreign.status, foreign.json?.['__type']], [400, 'CloudHsmResourceNotFoundException'], "another account's device is not found");
    const unsigned = await rawRequest(url, { method: 'GET', path: `/audit/${serial}`, headers: {} });
    assert.equal(unsigned.status, 403);
    assert.equal(unsigned.json?.['__type'], 'MissingAuthenticationTokenException');
    assert.equal((await get('/audit/not-a-serial')).status, 400);
    assert.equal((await get('/audit/CFR-0000000000000000')).status, 400);
    assert.equal((await signedRequest(url, { method: 'POST', path: `/audit/${serial}`, body: '' })).status, 400);
  } finally {
    server.close();
    await node.close();
    await archive.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
