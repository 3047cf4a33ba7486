// The node processes of a development cluster are started by the same code as the local fleet's
// devices (src/service/fleet/node_process.ts, which dev_cluster.ts imports); this module keeps the
// development cluster's names for that code, for the commands and tests that use them.

export { LOG_TAIL_CHARS, NODE_LOG_FILE, NODE_READY_TIMEOUT_MS, NODE_STOP_TIMEOUT_MS, isRunning, spawnNode, stopNode } from '../service/fleet/node_process.js';
export type { NodeProcess as DevNode, SpawnNodeOptions } from '../service/fleet/node_process.js';
