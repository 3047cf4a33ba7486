// `coffer audit verify` (src/cli/audit_commands.ts) run as the real command (dist/src/cli/main.js in
// a child process): a device's log as a bundle, as a folder of pages and as a JSON-lines export
// verifies (exit 0); an altered record, a dropped page and another operator's roots fail with exit
// 1, naming the first bad record's seq and reason; a file that is not an audit log is refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeAuditRecord, encodeAuditBundle, encodeAuditRecord } from '../../src/formats/audit_record.js';
import { auditJsonLines } from '../../src/formats/audit_json.js';
import { verifyAuditBundles } from '../../src/formats/audit_verify.js';
import { createDevelopmentAuthorities } from '../../src/factory/development.js';
import { ADMIN_PW } from '../hsm/backup/backup_support.js';
import { auditedDevice, bundleOf, roots } from '../hsm/audit/audit_support.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

test('coffer audit verify: bundles, folders and JSON-lines exports; the first bad record named; exit codes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-audit-cli-'));
  try {
    const authorities = await createDevelopmentAuthorities();
    const { hsm, log } = await auditedDevice(authorities, { checkpointRecords: 4 });
    const admin = hsm.openSession();
    await admin.login('admin', ADMIN_PW);
    for (let i = 0; i < 5; i++) await admin.createUser(`user${i}`, 'user-password-1', 'crypto-user');
    const page1 = log.collect(0n, 4096);
    for (let i = 0; i < 5; i++) await admin.deleteUser(`user${i}`);
    const page2 = log.collect(BigInt(page1.length), 4096);
    const r = roots(authorities);
    writeFileSync(join(dir, 'm.pem'), r.manufacturerRoot);
    writeFileSync(join(dir, 'o.pem'), r.operatorRoot);
    const other = roots(await createDevelopmentAuthorities());
    writeFileSync(join(dir, 'other-o.pem'), other.operatorRoot);
    const run = (...args: string[]): { status: number | null; stdout: string; stderr: string } =>
      spawnSync(process.execPath, [MAIN, 'audit', 'verify', ...args], { encoding: 'utf8' });
    const rootArgs = ['--manufacturer-root', join(dir, 'm.pem'), '--operator-root', join(dir, 'o.pem')];

    // One bundle, and a folder of two pages (named so that name order is not log order).
    writeFileSync(join(dir, 'all.cab'), encodeAuditBundle(bundleOf(hsm, [...page1, ...page2])));
    mkdirSync(join(dir, 'pages'));
    writeFileSync(join(dir, 'pages', 'b.cab'), encodeAuditBundle(bundleOf(hsm, page1)));
    writeFileSync(join(dir, 'pages', 'a.cab'), encodeAuditBundle(bundleOf(hsm, page2)));
    for (const path of [join(dir, 'all.cab'), join(dir, 'pages')]) {
      const ok = run(path, ...rootArgs);
      assert.equal(ok.status, 0, ok.stderr);
      assert.match(ok.stdout, /verdict: +verified/);
      assert.match(ok.stdout, new RegExp(hsm.provisioning.identity().serial));
    }
    const json = run(join(dir, 'all.cab'), ...rootArgs, '--json');
    assert.equal(json.status, 0);
    const parsed = JSON.parse(json.stdout) as { ok: boolean; records: number; lastSeq: string };
    assert.deepEqual([parsed.ok, parsed.records, parsed.lastSeq], [true, page1.length + page2.length, String(page1.length + page2.length - 1)]);

    // The JSON-lines export, as the control plane's endpoint writes it.
    const bundles = [bundleOf(hsm, page1), bundleOf(hsm, page2)];
    const lines = auditJsonLines(bundles, verifyAuditBundles({ bundles, ...r, atMs: Date.now() }));
    writeFileSync(join(dir, 'export.jsonl'), lines.join('\n') + '\n');
    assert.equal(run(join(dir, 'export.jsonl'), ...rootArgs).status, 0);

    // An altered record: exit 1, its seq and the reason on stdout, the error code on stderr.
    const k = 5;
    const altered = [...page1];
    const rec = decodeAuditRecord(altered[k] as Uint8Array);
    assert.equal(rec.type, 'event');
    if (rec.type === 'event') altered[k] = encodeAuditRecord({ ...rec, event: { ...rec.event, detail: 'someone' } });
    writeFileSync(join(dir, 'altered.cab'), encodeAuditBundle(bundleOf(hsm, altered)));
    const bad = run(join(dir, 'altered.cab'), ...rootArgs);
    assert.equal(bad.status, 1);
    assert.match(bad.stdout, new RegExp(`NOT VERIFIED: first bad record at seq ${k} .*chain-broken`));
    assert.match(bad.stderr, /COFFER_AUDIT_UNVERIFIED/);
    // A page missing from the folder.
    const third = log.collect(BigInt(page1.length + page2.length), 4096);
    assert.equal(third.length, 0, 'nothing new');
    await admin.createUser('late', 'user-password-1', 'crypto-user');
    writeFileSync(join(dir, 'pages', 'c.cab'), encodeAuditBundle(bundleOf(hsm, log.collect(BigInt(page1.length + page2.length), 4096))));
    writeFileSync(join(dir, 'pages', 'a.cab'), encodeAuditBundle(bundleOf(hsm, page1))); // page 2 replaced by a copy of page 1
    const gap = run(join(dir, 'pages'), ...rootArgs);
    assert.equal(gap.status, 1);
    assert.match(gap.stdout, new RegExp(`seq ${page1.length + page2.length} .*gap`));
    // Another operator's root, and a file that is no audit log.
    const foreign = run(join(dir, 'all.cab'), '--manufacturer-root', join(dir, 'm.pem'), '--operator-root', join(dir, 'other-o.pem'));
    assert.equal(foreign.status, 1);
    assert.match(foreign.stdout, /untrusted-chain/);
    writeFileSync(join(dir, 'junk.txt'), 'not an audit log\n');
    const junk = run(join(dir, 'junk.txt'), ...rootArgs);
    assert.equal(junk.status, 1);
    assert.match(junk.stderr, /COFFER_FORMAT_MALFORMED/);
    assert.equal(run(join(dir, 'all.cab')).status, 2, 'the roots are required');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
