// The remote fleet (src/service/fleet/remote_fleet.ts): the conformance suite on real `coffer hsm
// serve` processes that the test starts as an operator would (each on its own address and the
// cluster's port, management on a port of its own) and registers; then registration itself —
// attestation, blank nodes only, where the data plane is, persistence.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { isCofferError, type ErrorCode } from '../../../src/errors.js';
import { createDevelopmentAuthorities } from '../../../src/factory/development.js';
import type { Fleet, FleetDevice } from '../../../src/service/fleet/fleet_port.js';
import { spawnNode, stopNode, type NodeProcess } from '../../../src/service/fleet/node_process.js';
import { REMOTE_FLEET_FILE, RemoteFleet } from '../../../src/service/fleet/remote_fleet.js';
import { createTlsIdentity } from '../../../src/node/tls_identity.js';
import { startTestNode, type TestNode } from '../../node/management_support.js';
import { fleetConformance } from './fleet_conformance.js';
import { MAIN_JS, fleetEnvironment, independentClient } from './fleet_support.js';

const env = await fleetEnvironment('remote-fleet');
const dir = join(env.dir, 'fleet');

function open(fleetDir: string, watchIntervalMs = 100): Promise<RemoteFleet> {
  return RemoteFleet.open({ dir: fleetDir, ...env.credentials, watchIntervalMs });
}

/** The nodes the "operator" runs, by address. */
const nodes = new Map<string, NodeProcess>();

async function startNode(host: string, port: number, managementPort = 0): Promise<NodeProcess> {
  const node = await spawnNode({ mainJs: MAIN_JS, dataDir: join(env.dir, 'nodes', host), authoritiesDir: env.authoritiesDir, host, port, managementPort });
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
    const doc = JSON.parse(readFileSync(join(dir, REMOTE_FLEET_FILE), 'utf8')) as { devices: Array<{ serial: string; state: string }> };
    assert.equal(doc.devices.find((d) => d.serial === device.serial)?.state, 'free', 'back in the pool');
  },
  processOf: (device) => String(nodeOf(device).pid),
  cleanup: async () => {
    await Promise.all([...nodes.values()].map((n) => stopNode(n, 'SIGTERM')));
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
  assert.deepEqual(fleet.registered(), []);
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
    assert.equal(second.registered().length, 2);
    const device = await second.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: a!.dataPlane.port });
    assert.equal(device.serial, ra.serial, 'the one node on the port asked for');
    await rejectsWith(second.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: a!.dataPlane.port }), 'COFFER_FLEET_EXHAUSTED');
    await rejectsWith(second.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', eniIp: '127.0.0.1', dataPlanePort: 0 }), 'COFFER_FLEET_ADDRESS_UNAVAILABLE');
    assert.throws(() => second.deregister(device.deviceId), (e) => isCofferError(e, 'COFFER_FLEET_NODE_NOT_BLANK'));
    await second.release(device);
    second.deregister(device.deviceId);
    second.deregister(rb.deviceId);
    assert.deepEqual(second.registered(), []);
    await second.close();
  });
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
  assert.equal(fleet.registered()[0]?.state, 'zeroise-owed');
  await rejectsWith(fleet.provision({ clusterId: 'cluster-abcdefghijk', hsmId: 'hsm-abcdefghijk', dataPlanePort: 0 }), 'COFFER_FLEET_EXHAUSTED');
  await fleet.close();
});
