// The remote fleet's registry document (src/service/fleet/remote_registry.ts): a round trip through
// a real metadata store, and every malformed, foreign or future document refused with its typed
// error rather than read as an empty or partial fleet.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import {
  REMOTE_NODES_MAX, REMOTE_REGISTRY_COLLECTION, REMOTE_REGISTRY_ID, decodeRegistry, encodeRegistry, readRegistry, updateRegistry, type RegistryStore, type RemoteRecord,
} from '../../../src/service/fleet/remote_registry.js';
import { SqliteMetadataStore } from '../../../src/storage/metadata_sqlite.js';

const NODE: RemoteRecord = {
  deviceId: 'remote-abcdefgh2345', serial: 'SN-0001', host: '10.0.0.5', port: 2223, managementHost: '10.0.0.5', managementPort: 2224, state: 'free', mode: 'NON_FIPS',
};

function refused(body: string, code: ErrorCode, why: string): void {
  assert.throws(() => decodeRegistry(body), (e) => isCofferError(e, code), why);
}

test('registry: written by compare-and-set and read back; an absent document is an empty fleet', async () => {
  const store = SqliteMetadataStore.open({ path: ':memory:' });
  try {
    assert.deepEqual(await readRegistry(store), { records: [], version: 0 });
    await updateRegistry(store, () => ({ records: [NODE], result: undefined }));
    const assigned: RemoteRecord = { ...NODE, state: 'assigned', hsmId: 'hsm-abcdefghijk' };
    await updateRegistry(store, (records) => ({ records: records.map(() => assigned), result: undefined }));
    assert.deepEqual(await readRegistry(store), { records: [assigned], version: 2 });
    assert.equal(await updateRegistry(store, () => ({ result: 'nothing written' })), 'nothing written');
    assert.equal((await readRegistry(store)).version, 2);
    // A writer that read an old version loses and re-reads: its change is decided on the new state.
    // Another process's write lands between this writer's read and its commit.
    let interfered = false;
    const racing: RegistryStore = {
      get: (collection, id) => store.get(collection, id),
      commit: async (writes) => {
        if (!interfered) {
          interfered = true;
          await store.commit([{ collection: REMOTE_REGISTRY_COLLECTION, id: REMOTE_REGISTRY_ID, parent: null, expectedVersion: 2, body: encodeRegistry([NODE]) }]);
        }
        return store.commit(writes);
      },
    };
    let calls = 0;
    await updateRegistry(racing, (records) => {
      calls++;
      return { records: records.map((r) => ({ ...r, port: 2225 })), result: undefined };
    });
    assert.equal(calls, 2, 'the change ran again on a fresh read after its compare-and-set lost');
    assert.deepEqual((await readRegistry(store)).records, [{ ...NODE, port: 2225 }]);
    const many = Array.from({ length: REMOTE_NODES_MAX + 1 }, (_, i) => ({ ...NODE, serial: `SN-${i}` }));
    await assert.rejects(updateRegistry(store, () => ({ records: many, result: undefined })), (e) => isCofferError(e, 'COFFER_FORMAT_LIMIT'));
  } finally {
    await store.close();
  }
});

test('registry: a document of another format, another version or with a malformed record is refused', () => {
  assert.deepEqual(decodeRegistry(encodeRegistry([NODE])), [NODE]);
  refused('not json', 'COFFER_FORMAT_BAD_MAGIC', 'not JSON');
  refused(JSON.stringify({ format: 'coffer-fleet', version: 1, devices: [] }), 'COFFER_FORMAT_BAD_MAGIC', 'the local fleet\'s format');
  refused(JSON.stringify({ format: 'coffer-remote-fleet', version: 2, devices: [] }), 'COFFER_FORMAT_UNKNOWN_VERSION', 'a later version');
  refused(JSON.stringify({ format: 'coffer-remote-fleet', version: 1 }), 'COFFER_FORMAT_BAD_MAGIC', 'no devices');
  const record = (change: Record<string, unknown>): string => JSON.stringify({ format: 'coffer-remote-fleet', version: 1, devices: [{ ...NODE, ...change }] });
  refused(record({ deviceId: 'local-abcdefgh2345' }), 'COFFER_FORMAT_BAD_MAGIC', 'a device id of another fleet');
  refused(record({ port: 0 }), 'COFFER_FORMAT_BAD_MAGIC', 'port 0');
  refused(record({ managementPort: 65536 }), 'COFFER_FORMAT_BAD_MAGIC', 'port over 65535');
  refused(record({ host: 'a host' }), 'COFFER_FORMAT_BAD_MAGIC', 'a host with a space');
  refused(record({ state: 'starting' }), 'COFFER_FORMAT_BAD_MAGIC', 'a local fleet state');
  refused(record({ hsmId: 'hsm-abcdefghijk' }), 'COFFER_FORMAT_BAD_MAGIC', 'an HSM on a free node');
  refused(record({ serial: 7 }), 'COFFER_FORMAT_BAD_MAGIC', 'a serial that is not text');
  refused(record({ mode: 'fips' }), 'COFFER_FORMAT_BAD_MAGIC', 'a mode that is not FIPS or NON_FIPS');
  refused(record({ mode: undefined }), 'COFFER_FORMAT_BAD_MAGIC', 'no mode');
});
