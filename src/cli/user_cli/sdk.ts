// The UserCluster the `coffer` command uses: the client SDK's Cluster (src/client/cluster.ts), which
// connects to every HSM trusting only the customer CA, logs in on each, balances and fails over.
//
// The SDK's findKeys returns Keys without their descriptions, so listing reads each key's
// attributes (CLI_BATCH_IN_FLIGHT_MAX at a time), which is what the progress bar of `key list`
// counts. `cluster activate` first asks each node's STATUS whether it is already activated.

import { Cluster, Connection, type Endpoint, type Key, type KeyInfo, type FindFilter } from '../../client/index.js';
import type { Acknowledgement } from '../../client/acks.js';
import { CLI_BATCH_IN_FLIGHT_MAX, CLIENT_CONNECT_TIMEOUT_MS } from '../../formats/limits.js';
import type { KeyFilter } from './args.js';
import type { ClusterTarget } from './config.js';
import type { KeyDescription } from './output.js';
import type { Acknowledged, ClusterFactory, Credentials, UserCluster } from './port.js';

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

/** Runs the state changes of one adapted cluster with the acknowledgements asked for, and keeps who acknowledged the last one. */
class Acks {
  #k: number | undefined;
  #last: Acknowledged | undefined;
  constructor(private readonly c: Cluster) {}
  set(k: number | undefined): void {
    this.#k = k;
  }
  get options(): { acks?: number } {
    return this.#k === undefined ? {} : { acks: this.#k };
  }
  take(): Acknowledged | undefined {
    const last = this.#last;
    this.#last = undefined;
    return last;
  }
  /** Records `ack` (in host:port terms) and returns nothing: the CLI's port speaks no SDK types. A
   * change that made no relayed journal entry (a solo cluster) has nothing to report: the output stays as it was. */
  note(ack: Acknowledgement | undefined): void {
    if (ack?.position === undefined) return;
    const nodes = this.c.nodes;
    this.#last = {
      nodes: ack.nodes.map((i) => {
        const e = nodes[i]?.endpoint;
        return e === undefined ? String(i) : `${e.host}:${e.port}`;
      }),
      required: ack.required,
      seq: String(ack.position.seq),
    };
  }
  key(k: Key): number {
    this.note(k.acknowledgement);
    return k.handle;
  }
}

function adapt(c: Cluster): UserCluster {
  const a = new Acks(c);
  return {
    setAcks: (k) => a.set(k),
    takeAcknowledgement: () => a.take(),
    generateKeyPair: async (spec, publicAttributes, privateAttributes) => {
      const sdkSpec = spec.keyType === 'RSA' ? spec : { curve: spec.curve };
      const pair = await c.generateKeyPair({ ...sdkSpec, publicAttributes, privateAttributes, ...a.options });
      return { publicHandle: pair.publicKey.handle, privateHandle: a.key(pair.privateKey) };
    },
    generateKey: async (spec, attributes) => a.key(await c.generateKey({ type: spec.keyType, bits: spec.bits, attributes, ...a.options })),
    findKeys: async (filter, onProgress): Promise<KeyDescription[]> => {
      if (filter.handle !== undefined) return [await c.key(filter.handle).attributes()];
      return describeAll(await c.findKeys(findFilter(filter)), onProgress);
    },
    describe: (handle) => c.key(handle).attributes(),
    setAttribute: async (handle, name, value) => a.note(await c.key(handle).setAttribute(name, value, a.options)),
    share: async (handle, user) => a.note(await c.key(handle).share(user, a.options)),
    unshare: async (handle, user) => a.note(await c.key(handle).unshare(user, a.options)),
    destroy: async (handle) => a.note(await c.key(handle).destroy(a.options)),
    exportPublicPem: (handle) => c.key(handle).exportPublicPem(),
    importPem: async (pem, kind, attributes) => a.key(kind === 'public' ? await c.importPublicKeyPem(pem, { attributes, ...a.options }) : await c.importPrivateKeyPem(pem, { attributes, ...a.options })),
    sign: (handle, params, data) => c.key(handle).sign(data, params),
    verify: (handle, params, data, signature) => c.key(handle).verify(data, signature, params),
    encrypt: (handle, params, data) => c.key(handle).encrypt(data, params),
    decrypt: (handle, params, data) => c.key(handle).decrypt(data, params),
    wrap: (wrappingHandle, targetHandle, params) => c.key(wrappingHandle).wrap(c.key(targetHandle), params),
    unwrap: async (unwrappingHandle, wrapped, params, template) => a.key(await c.unwrapKey(c.key(unwrappingHandle), wrapped, template, params, a.options)),
    createUser: async (name, password, role) => a.note(await c.users.create(name, password, role, a.options)),
    listUsers: () => c.users.list(),
    deleteUser: async (name) => a.note(await c.users.delete(name, a.options)),
    changePassword: async (name, password) => a.note(await c.users.changePassword(name, password, a.options)),
    changeOwnPassword: async (current, next) => a.note(await c.users.changeOwnPassword(current, next, a.options)),
    unlockUser: async (name) => a.note(await c.users.unlock(name, a.options)),
    registerQuorumKey: async (spki) => a.note(await c.quorum.registerKey(spki, a.options)),
    setQuorumValue: async (service, m) => a.note(await c.quorum.setValue(service, m, a.options)),
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
