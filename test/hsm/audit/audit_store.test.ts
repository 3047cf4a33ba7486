// Both AuditStore adapters (src/hsm/audit/audit_store.ts) pass the port's one conformance suite.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileAuditStore, MemoryAuditStore } from '../../../src/hsm/audit/audit_store.js';
import { auditStoreConformance } from './audit_store_conformance.js';

auditStoreConformance('memory', () => {
  const store = new MemoryAuditStore();
  return { open: () => store, reopen: () => store, cleanup: () => undefined };
});

auditStoreConformance('file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-audit-store-'));
  const path = join(dir, 'audit.log');
  return { open: () => new FileAuditStore(path), reopen: () => new FileAuditStore(path), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
});
