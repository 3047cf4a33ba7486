// The UserCluster the `coffer` command uses: the client SDK's Cluster (src/client/cluster.ts), which
// connects to every HSM trusting only the customer CA, logs in on each, balances and fails over.
//
// The SDK's findKeys returns Keys without their descriptions, so listing reads each key's
// attributes (CLI_BATCH_IN_FLIGHT_MAX at a time), which is what the progress bar of `key list`
// counts. `cluster activate` first asks each node's STATUS whether it is already activated.

import { Cluster, Connection, type Endpoint, type Key, type KeyInfo, type FindFilter } from '../../client/index.js';
import { CLI_BATCH_IN_FLIGHT_MAX, CLIENT_CONNECT_TIMEOUT_MS } from '../../formats/limits.js';
import type { KeyFilter } from './args.js';
import type { ClusterTarget } from './config.js';
import type { KeyDescription } from './output.js';
import type { ClusterFactory, Credentials, UserCluster } from './port.js';

function findFilter(f: KeyFilter): FindFilter {
  return {
    ...(f.label === undefined ? {} : { label: f.label }),
    ...(f.id === undefined ? {} : { id: f.id }),
    ...(f.class === undefined ? {} : { class: f.class }),
    ...(f.keyType === undefined ? {} : { keyType: f.keyType }),
    ...f.booleans,
  };
}

/** Reads every key's description, a bounded number at a time, reporting progress. */
async function describeAll(keys: readonly Key[], onProgress?: (done: number, total: number) => void): Promise<KeyInfo[]> {
  const out = new Array<KeyInfo>(keys.length);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const i = next++;
      out[i] = await (keys[i] as Key).attributes();
      done++;
      onProgress?.(done, keys.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CLI_BATCH_IN_FLIGHT_MAX, keys.length) }, worker));
  return out;
}

function adapt(c: Cluster): UserCluster {
  return {
    generateKeyPair: async (spec, publicAttributes, privateAttributes) => {
      const sdkSpec = spec.keyType === 'RSA' ? spec : { curve: spec.curve };
      const pair = await c.generateKeyPair({ ...sdkSpec, publicAttributes, privateAttributes });
      return { publicHandle: pair.publicKey.handle, privateHandle: pair.privateKey.handle };
    },
    generateKey: async (spec, attributes) => (await c.generateKey({ type: spec.keyType, bits: spec.bits, attributes })).handle,
    findKeys: async (filter, onProgress): Promise<KeyDescription[]> => {
      if (filter.handle !== undefined) return [await c.key(filter.handle).attributes()];
      return describeAll(await c.findKeys(findFilter(filter)), onProgress);
    },
    describe: (handle) => c.key(handle).attributes(),
    setAttribute: async (handle, name, value) => void (await c.key(handle).setAttribute(name, value)),
    share: async (handle, user) => void (await c.key(handle).share(user)),
    unshare: async (handle, user) => void (await c.key(handle).unshare(user)),
    destroy: async (handle) => void (await c.key(handle).destroy()),
    exportPublicPem: (handle) => c.key(handle).exportPublicPem(),
    importPem: async (pem, kind, attributes) => (kind === 'public' ? await c.importPublicKeyPem(pem, { attributes }) : await c.importPrivateKeyPem(pem, { attributes })).handle,
    sign: (handle, params, data) => c.key(handle).sign(data, params),
    verify: (handle, params, data, signature) => c.key(handle).verify(data, signature, params),
    encrypt: (handle, params, data) => c.key(handle).encrypt(data, params),
    decrypt: (handle, params, data) => c.key(handle).decrypt(data, params),
    wrap: (wrappingHandle, targetHandle, params) => c.key(wrappingHandle).wrap(c.key(targetHandle), params),
    unwrap: async (unwrappingHandle, wrapped, params, template) => (await c.unwrapKey(c.key(unwrappingHandle), wrapped, template, params)).handle,
    createUser: async (name, password, role) => void (await c.users.create(name, password, role)),
    listUsers: () => c.users.list(),
    deleteUser: async (name) => void (await c.users.delete(name)),
    changePassword: async (name, password) => void (await c.users.changePassword(name, password)),
    changeOwnPassword: async (current, next) => void (await c.users.changeOwnPassword(current, next)),
    unlockUser: async (name) => void (await c.users.unlock(name)),
    registerQuorumKey: async (spki) => void (await c.quorum.registerKey(spki)),
    setQuorumValue: async (service, m) => void (await c.quorum.setValue(service, m)),
    quorumValues: async () => ({ ...(await c.quorum.values()) }),
    generateQuorumToken: (service, handle) => c.quorum.generateToken(service, handle),
    approveQuorumToken: (token, approver, signature) => c.quorum.approve(token, approver, signature),
    listQuorumTokens: () => c.quorum.listTokens(),
    close: () => c.close(),
  };
}

/** One endpoint's STATUS `activated`, over TLS trusting the customer CA alone; undefined when the
 * node cannot be reached or does not verify (Cluster.activate then reports why). */
async function activated(endpoint: Endpoint, ca: string): Promise<boolean | undefined> {
  let c: Connection | undefined;
  try {
    c = await Connection.connect({
      host: endpoint.host, port: endpoint.port, ca, connectTimeoutMs: CLIENT_CONNECT_TIMEOUT_MS,
      ...(endpoint.servername === undefined ? {} : { servername: endpoint.servername }),
    });
    return (await c.call('STATUS', {})).activated;
  } catch {
    return undefined;
  } finally {
    c?.close();
  }
}

export const SDK_CLUSTER_FACTORY: ClusterFactory = {
  async connect(target: ClusterTarget, credentials: Credentials): Promise<UserCluster> {
    return adapt(await Cluster.connect({ endpoints: target.endpoints, ca: target.ca, credentials }));
  },
  activationStates: (target) => Promise.all(target.endpoints.map((e) => activated(e, target.ca))),
  async activate(target, preCoPassword, newAdminPassword) {
    await Cluster.activate({ endpoints: target.endpoints, ca: target.ca, preCoPassword, newAdminPassword });
  },
};
