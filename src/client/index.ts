// The client SDK's public surface (docs/sdk.md): a cluster of HSMs as one.

export { Cluster, type ClusterOptions, type Credentials, type KeyOptions, type KeyPair, type KeyPairSpec, type SecretKeySpec, type FindFilter, type NodeStatus, type DigestName } from './cluster.js';
export { Key, defaultSignMechanism, type BatchResult, type KeyInfo, type KeyType, type ObjectClass, type Curve, type SettableAttribute, type Template, type CertificateTemplate, type CertificateValue } from './keys.js';
export { Users, Quorum, type ManagedRole, type UserInfo, type QuorumService, type AdminService, type QuorumToken, type QuorumTokenInfo } from './users.js';
export { endpointsFromDescribeClusters, loadClusterConfig, parseClusterConfig, checkEndpoints, type ClusterConfig } from './discovery.js';
export { type Endpoint, type NodeSnapshot, type NodeState } from './node_link.js';
export { Connection, NodeBusyError } from './connection.js';
