// The remote fleet (src/service/fleet/remote_fleet.ts): the conformance suite on real `coffer hsm
// serve` processes that the test starts as an operator would (each on its own address and the
// cluster's port, management on a port of its own) and registers; then registration itself —
// attestation, blank nodes only, where the data plane is, persistence in the metadata store, and
// several fleet instances (service processes) on one store.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import { createDevelopmentAuthorities } from '../../../src/factory/development.js';
import type { Fleet, FleetDevice } from '../../../src/service/fleet/fleet_port.js';
import { spawnNode, stopNode, type NodeProcess } from '../../../src/service/fleet/node_process.js';
import { RemoteFleet } from '../../../src/service/fleet/remote_fleet.js';
import { readRegistry, updateRegistry } from '../../../src/service/fleet/remote_registry.js';
import type { MetadataStore } from '../../../src/storage/metadata_port.js';
import { SqliteMetadataStore } from '../../../src/storage/metadata_sqlite.js';
import { createTlsIdentity } from '../../../src/node/tls_identity.js';
import { startTestNode, type TestNode } from '../../node/management_support.js';
import { fleetConformance } from './fleet_conformance.js';
import { MAIN_JS, fleetEnvironment, independentClient } from './fleet_support.js';

const env = await fleetEnvironment('remote-fleet');
const dir = join(env.dir, 'fleet');

/** One metadata store per "region" directory, as the service processes of a region share one. */
const stores = new Map<string, MetadataStore>();

function storeOf(fleetDir: string): MetadataStore {
  let store = stores.get(fleetDir);
  if (store === undefined) {
    mkdirSync(fleetDir, { recursive: true });
    store = SqliteMetadataStore.open({ path: join(fleetDir, 'metadata.sqlite') });
    stores.set(fleetDir, store);
  }
  return store;
}

function open(fleetDir: string, watchIntervalMs = 100): Promise<RemoteFleet> {
  return RemoteFleet.open({ metadata: storeOf(fleetDir), ...env.credentials, watchIntervalMs });
}

/** The nodes the "operator" runs, by address. */
const nodes = new Map<string, NodeProcess>();

async function startNode(host: string, port: number, managementPort = 0, mode: 'FIPS' | 'NON_FIPS' = 'NON_FIPS'): Promise<NodeProcess> {
  const node = await spawnNode({ mainJs: MAIN_JS, dataDir: join(env.dir, 'nodes', host), authoritiesDir: env.authoritiesDir, host, port, managementPort, mode });
  nodes.set(host, node);
  return node;
}

function nodeOf(device: FleetDevice): NodeProcess {
  return nodes.get(device.host) ?? assert.fail(`no node at ${device.host}`);
}

fleetConformance({
  name: 'remote', env, dir,
  open: (fleetDir) => open(fleetDir),
  address: (n) => `127.0.0.${100 + n}`,
  prepare: async (fleet: Fleet, addresses, port) => {
    for (const host of addresses) {
      if (nodes.get(host)?.port === port) continue; // already running and registered there
      const node = await startNode(host, port);
      await (fleet as RemoteFleet).register({ managementHost: host, managementPort: node.managementPort });
    }
  },
  kill: (device) => stopNode(nodeOf(device), 'SIGKILL'),
  recover: async (device) => {
    const dead = nodeOf(device);
    await startNode(dead.host, dead.port, dead.managementPort); // the operator's supervisor restarts it on its data
  },
  released: async (device) => {
    const own = independentClient(env, device);
    const health = await own.health();
    own.close();
    assert.deepEqual([health.cluster, health.usersInitialised, health.tokenObjects], ['UNINITIALISED', false, 0], 'zeroised');
    const { records } = await readRegistry(storeOf(dir));
    assert.equal(records.find((d) => d.serial === device.serial)?.state, 'free', 'back in the pool');
  },
  processOf: (device) => String(nodeOf(device).pid),
  cleanup: async () => {
    await Promise.all([...nodes.values()].map((n) => stopNode(n, 'SIGTERM')));
    for (const store of stores.values()) await store.close();
  },
});

async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(isCofferError(e, code), `expected ${code}, got ${String(e)}`);
    return true;
  });
}

/** In-process nodes (memory stores): registration's checks need no process. */
async function withTestNodes(authorities: Parameters<typeof startTestNode>[0], count: number, fn: (ns: TestNode[]) => Promise<void>): Promise<void> {
  const ns = await Promise.all(Array.from({ length: count }, () => startTestNode(authorities)));
  try {
    await fn(ns);
  } finally {
    for (const n of ns) {
      await n.close();
      rmSync(n.dataDir, { recursive: true, force: true });
    }
  }
}

test('remote: a node of other roots is refused as untrusted; a node holding a cluster as not blank', async () => {
  const fleet = await open(join(env.dir, 'refusals'));
  const other = await createDevelopmentAuthorities();
  // Made by another manufacturer, commissioned by our operator (so it accepts our client certificate).
  await withTestNodes({ ...env.authorities, manufacturer: other.manufacturer }, 1, async ([foreign]) => {
    await rejectsWith(fleet.register({ managementHost: '127.0.0.1', managementPort: foreign!.management.port }), 'COFFER_FLEET_UNTRUSTED');
  });
  // A genuine device's identity relayed by a server that terminates TLS with its own leaf: the
  // attestation covers another key.
  await withTestNodes(env.authorities, 2, async ([genuine, relay]) => {
    const real = await createTlsIdentity(genuine!.hsm, ['127.0.0.1']);
    const own = await createTlsIdentity(relay!.hsm, ['127.0.0.1']);
    const impostor = await startTestNode(env.authorities, { tls: { ...real, keyPem: own.keyPem, certificatePem: own.certificatePem } });
    try {
      await rejectsWith(fleet.register({ managementHost: '127.0.0.1', managementPort: impostor.management.port }), 'COFFER_FLEET_UNTRUSTED');
    } finally {
      await impostor.close();
      rmSync(impostor.dataDir, { recursive: true, force: true });
    }
  });
  // A node of another operator does not even accept this fleet's client certificate.
  await withTestNodes(other, 1, async ([stranger]) => {
    await rejectsWith(fleet.register({ managementHost: '127.0.0.1', managementPort: stranger!.management.port }), 'COFFER_CONNECTION_LOST');
  });
  await withTestNodes(env.authorities, 1, async ([used]) => {
    const device = { deviceId: 'x', serial: used!.hsm.status().serial ?? '', host: '127.0.0.1', port: used!.dataPlane.port, managementHost: '127.0.0.1', managementPort: used!.management.port };
    const client = independentClient(env, device);
    await client.initialiseCluster({
      certificatePem: await env.customerCa.signClusterCsr(await client.clusterCsr('cluster-remoteusedab')), trustAnchorPem: env.customerCa.certificatePem,
      preCoPassword: 'preco-password', applianceCredential: 'appliance-credential-0123456789',
    });
    client.close();
    await rejectsWith(fleet.register({ managementHost: '127.0.0.1', managementPort: used!.management.port }), 'COFFER_FLEET_NODE_NOT_BLANK');
  });
  await rejectsWith(fleet.register({ managementHost: 'bad host', managementPort: 1 }), 'COFFER_FLEET_ADDRESS_UNAVAILABLE');
  assert.deepEqual(await fleet.registered(), []);
  await fleet.close();
});

test('remote: the data plane is where the node says it listens unless the operator says otherwise; registrations persist; none free is exhausted', async () => {
  const fleetDir = join(env.dir, 'registrations');
  const first = await open(fleetDir);
  await rejectsWith(first.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: 0 }), 'COFFER_FLEET_EXHAUSTED');
  await withTestNodes(env.authorities, 2, async ([a, b]) => {
    const ra = await first.register({ managementHost: '127.0.0.1', managementPort: a!.management.port });
    assert.deepEqual([ra.host, ra.port, ra.serial, ra.state], ['127.0.0.1', a!.dataPlane.port, a!.hsm.status().serial, 'free'], 'from the node\'s health');
    const rb = await first.register({ managementHost: '127.0.0.1', managementPort: b!.management.port, dataPlaneHost: 'hsm-b.example', dataPlanePort: 2223 });
    assert.deepEqual([rb.host, rb.port], ['hsm-b.example', 2223], 'as registered');
    const again = await first.register({ managementHost: '127.0.0.1', managementPort: a!.management.port });
    assert.equal(again.deviceId, ra.deviceId, 'one serial, one registration');
    await first.close();

    const second = await open(fleetDir);
    assert.equal((await second.registered()).length, 2);
    const device = await second.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: a!.dataPlane.port });
    assert.equal(device.serial, ra.serial, 'the one node on the port asked for');
    // Another HSM (the same one provisioned again would free its stray assignment first).
    await rejectsWith(second.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-bbcdefghijk', dataPlanePort: a!.dataPlane.port }), 'COFFER_FLEET_EXHAUSTED');
    await rejectsWith(second.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-bbcdefghijk', eniIp: '127.0.0.1', dataPlanePort: 0 }), 'COFFER_FLEET_ADDRESS_UNAVAILABLE');
    assert.equal((await second.registered()).find((n) => n.deviceId === device.deviceId)?.hsmId, 'hsm-abcdefghijk', 'the HSM it serves');
    await rejectsWith(second.deregister({ deviceId: device.deviceId }), 'COFFER_FLEET_NODE_NOT_BLANK');
    await second.release(device);
    await second.deregister({ deviceId: device.deviceId });
    await second.deregister({ managementHost: '127.0.0.1', managementPort: b!.management.port });
    await rejectsWith(second.deregister({ deviceId: rb.deviceId }), 'COFFER_FLEET_NODE_UNKNOWN');
    assert.deepEqual(await second.registered(), []);
    await second.close();
  });
});

test('remote: a node is registered with the mode its device was commissioned in, and serves clusters of that mode only', async () => {
  const fleet = await open(join(env.dir, 'modes'));
  try {
    const fips = await startNode('127.0.0.150', 0, 0, 'FIPS');
    const nonFips = await startNode('127.0.0.151', 0, 0, 'NON_FIPS');
    const rf = await fleet.register({ managementHost: fips.host, managementPort: fips.managementPort });
    const rn = await fleet.register({ managementHost: nonFips.host, managementPort: nonFips.managementPort });
    assert.deepEqual([rf.mode, rn.mode], ['FIPS', 'NON_FIPS'], 'from the node\'s health');
    const a = await fleet.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: 0, mode: 'NON_FIPS' });
    assert.equal(a.serial, rn.serial, 'the NON_FIPS node, though the FIPS one was registered first');
    await rejectsWith(fleet.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-bbcdefghijk', dataPlanePort: 0, mode: 'NON_FIPS' }), 'COFFER_FLEET_EXHAUSTED');
    const b = await fleet.provision({ clusterId: 'cluster-bbcdefghijk', hsmId: 'hsm-cbcdefghijk', dataPlanePort: 0, mode: 'FIPS' });
    assert.equal(b.serial, rf.serial);
    await fleet.release(a);
    await fleet.release(b);
  } finally {
    await fleet.close();
  }
});

test('remote: a node whose journal mode differs from the service\'s is refused at registration and passed over at hand-out', async () => {
  const region = join(env.dir, 'journal-modes');
  const relayed = await RemoteFleet.open({ metadata: storeOf(region), ...env.credentials, watchIntervalMs: 100, journal: 'relayed' });
  const solo = await RemoteFleet.open({ metadata: storeOf(region), ...env.credentials, watchIntervalMs: 100, journal: 'solo' });
  const unchecked = await open(region);
  const [soloNode, relayedNode] = [await startTestNode(env.authorities), await startTestNode(env.authorities, {}, undefined, { mode: 'relayed' })];
  try {
    const refusal = (node: string, service: string) => (e: unknown): boolean => {
      assert.ok(isCofferError(e, 'COFFER_FLEET_JOURNAL_MODE_MISMATCH'), String(e));
      assert.deepEqual([e.detail['node'], e.detail['service']], [node, service]);
      return true;
    };
    await assert.rejects(relayed.register({ managementHost: '127.0.0.1', managementPort: soloNode.management.port }), refusal('solo', 'relayed'));
    await assert.rejects(solo.register({ managementHost: '127.0.0.1', managementPort: relayedNode.management.port }), refusal('relayed', 'solo'));
    assert.deepEqual((await relayed.registered()).map((n) => n.serial), [], 'nothing recorded');
    const r = await relayed.register({ managementHost: '127.0.0.1', managementPort: relayedNode.management.port });
    assert.equal(r.serial, relayedNode.hsm.status().serial);
    // A solo node in the registry (registered by a fleet that does not check) is never handed out
    // by the relayed fleet; the relayed node is.
    await unchecked.register({ managementHost: '127.0.0.1', managementPort: soloNode.management.port });
    const device = await relayed.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: 0 });
    assert.equal(device.serial, relayedNode.hsm.status().serial);
    await rejectsWith(relayed.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-bbcdefghijk', dataPlanePort: 0 }), 'COFFER_FLEET_EXHAUSTED');
    await relayed.release(device);
  } finally {
    for (const f of [relayed, solo, unchecked]) await f.close();
    for (const n of [soloNode, relayedNode]) {
      await n.close();
      rmSync(n.dataDir, { recursive: true, force: true });
    }
  }
});

test('remote: a node left assigned by a provision that a crash cut short is released when that HSM is provisioned again', async () => {
  const fleetDir = join(env.dir, 'stray');
  const fleet = await open(fleetDir);
  try {
    await withTestNodes(env.authorities, 2, async ([a, b]) => {
      const ra = await fleet.register({ managementHost: '127.0.0.1', managementPort: a!.management.port });
      await fleet.register({ managementHost: '127.0.0.1', managementPort: b!.management.port });
      // The cut provision: the registry says `ra` serves the HSM; the HSM never recorded it.
      await updateRegistry(storeOf(fleetDir), (records) => ({ records: records.map((r) => (r.deviceId === ra.deviceId ? { ...r, state: 'assigned', hsmId: 'hsm-abcdefghijk' } : r)), result: undefined }));
      const device = await fleet.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: 0 });
      const serving = (await fleet.registered()).filter((n) => n.hsmId === 'hsm-abcdefghijk');
      assert.deepEqual(serving.map((n) => [n.deviceId, n.state]), [[device.deviceId, 'assigned']], 'one node serves the HSM; the stray was freed');
      assert.equal((await fleet.registered()).filter((n) => n.state === 'free').length, 1);
      await fleet.release(device);
    });
  } finally {
    await fleet.close();
  }
});

test('remote: a release that cannot reach the node leaves it owed a zeroise, never handed out', async () => {
  const fleet = await open(join(env.dir, 'owed'));
  let device: FleetDevice | undefined;
  await withTestNodes(env.authorities, 1, async ([n]) => {
    await fleet.register({ managementHost: '127.0.0.1', managementPort: n!.management.port });
    device = await fleet.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: 0 });
  });
  const gone = device ?? assert.fail('provisioned');
  await assert.rejects(fleet.release(gone), (e) => isCofferError(e, 'COFFER_CONNECTION_LOST'));
  assert.equal((await fleet.registered())[0]?.state, 'zeroise-owed');
  await rejectsWith(fleet.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: 0 }), 'COFFER_FLEET_EXHAUSTED');
  await fleet.close();
});

test('remote: the fleets of several service processes share one registry: one record per node, handed out once, not deregistered while in use', async () => {
  const region = join(env.dir, 'shared');
  const a = await open(region);
  const b = await open(region);
  await withTestNodes(env.authorities, 1, async ([n]) => {
    const registration = { managementHost: '127.0.0.1', managementPort: n!.management.port };
    const [ra, rb] = await Promise.all([a.register(registration), b.register(registration)]);
    assert.equal(ra.deviceId, rb.deviceId, 'one node registered through two processes at once: one record');
    assert.deepEqual((await b.registered()).map((r) => r.serial), [n!.hsm.status().serial]);

    const request = { clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: 0 };
    const results = await Promise.allSettled([a.provision(request), b.provision(request)]);
    const won = results.filter((r): r is PromiseFulfilledResult<FleetDevice> => r.status === 'fulfilled');
    assert.equal(won.length, 1, 'one provision wins the one node');
    const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.ok(isCofferError(lost?.reason, 'COFFER_FLEET_EXHAUSTED'), `the other finds none free: ${String(lost?.reason)}`);
    const device = won[0]!.value;
    const owner = results[0]?.status === 'fulfilled' ? a : b;
    const other = owner === a ? b : a;

    await rejectsWith(other.deregister({ deviceId: device.deviceId }), 'COFFER_FLEET_NODE_NOT_BLANK');
    await owner.release(device);
    assert.equal((await other.registered())[0]?.state, 'free', 'released through one, free in the other');
    await other.deregister(registration);
    assert.deepEqual(await owner.registered(), []);
  });
  await a.close();
  await b.close();
});
