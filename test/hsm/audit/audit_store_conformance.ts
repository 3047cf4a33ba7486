// The AuditStore port's conformance suite (src/hsm/audit/audit_store.ts): what every adapter does —
// records come back in the order appended, of any length up to AUDIT_RECORD_BYTES_MAX; a rewrite
// replaces them all; what was synced is there after the store is opened again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AUDIT_RECORD_BYTES_MAX } from '../../../src/formats/limits.js';
import type { AuditStore } from '../../../src/hsm/audit/audit_store.js';

export interface AuditStoreSubject {
  /** A fresh, empty store. */
  open(): AuditStore;
  /** The same store opened again (as after a restart). */
  reopen(): AuditStore;
  cleanup(): void;
}

export function auditStoreConformance(name: string, subject: () => AuditStoreSubject): void {
  test(`audit store (${name}): a new store is empty; append, sync and reopen keep the records in order`, () => {
    const s = subject();
    try {
      const store = s.open();
      assert.deepEqual(store.load(), []);
      const records = [Uint8Array.of(1, 2, 3), Uint8Array.of(4), new Uint8Array(AUDIT_RECORD_BYTES_MAX).fill(9)];
      for (const r of records) store.append(r);
      store.sync();
      assert.deepEqual(store.load(), records);
      store.close();
      const again = s.reopen();
      assert.deepEqual(again.load(), records);
      again.close();
    } finally {
      s.cleanup();
    }
  });

  test(`audit store (${name}): a rewrite replaces every record, and appends go on after it`, () => {
    const s = subject();
    try {
      const store = s.open();
      for (let i = 0; i < 10; i++) store.append(Uint8Array.of(i, i));
      store.rewrite([Uint8Array.of(7, 7), Uint8Array.of(8, 8)]);
      store.append(Uint8Array.of(10, 10));
      store.sync();
      store.close();
      const again = s.reopen();
      assert.deepEqual(again.load(), [Uint8Array.of(7, 7), Uint8Array.of(8, 8), Uint8Array.of(10, 10)]);
      again.close();
    } finally {
      s.cleanup();
    }
  });

  test(`audit store (${name}): a record appended is the store's copy (the caller's buffer may change)`, () => {
    const s = subject();
    try {
      const store = s.open();
      const r = Uint8Array.of(1, 2, 3);
      store.append(r);
      r.fill(0);
      assert.deepEqual(store.load(), [Uint8Array.of(1, 2, 3)]);
      store.close();
    } finally {
      s.cleanup();
    }
  });
}
