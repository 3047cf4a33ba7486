// The thread pool a fleet gives its node processes (docs/node.md "Thread pool"): one thread per core,
// at least two, unless the operator set UV_THREADPOOL_SIZE, which passes through; what a node logs
// is what libuv makes of the variable; and a spawned node's pool really has that many threads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_LOG_FILE, NODE_THREAD_POOL_MIN, nodeThreadPoolSize, spawnNode, stopNode, type NodeProcess } from '../../../src/service/fleet/node_process.js';
import { threadPoolSize } from '../../../src/node/serve.js';
import { createDevelopmentAuthorities, saveDevelopmentAuthorities } from '../../../src/factory/development.js';

const MAIN_JS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src/cli/main.js');

test('a node gets one pool thread per core, at least two; an operator setting passes through unchanged', () => {
  assert.equal(NODE_THREAD_POOL_MIN, 2);
  assert.equal(nodeThreadPoolSize({}, 1), '2');
  assert.equal(nodeThreadPoolSize({}, 2), '2');
  assert.equal(nodeThreadPoolSize({}, 16), '16');
  assert.equal(nodeThreadPoolSize({ UV_THREADPOOL_SIZE: '3' }, 16), '3');
  assert.equal(nodeThreadPoolSize({ UV_THREADPOOL_SIZE: '1' }, 2), '1');
  assert.equal(nodeThreadPoolSize({ UV_THREADPOOL_SIZE: '' }, 6), '6', 'empty is unset');
});

test('the size a node logs is what libuv makes of UV_THREADPOOL_SIZE', () => {
  assert.equal(threadPoolSize({}), 4);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '2' }), 2);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: ' 6 threads' }), 6);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '0' }), 1);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '' }), 1);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: 'many' }), 1);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '1024' }), 1024);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '5000' }), 1024);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '-1' }), 1024, 'libuv reads it as unsigned');
});

/** The threads of a running process (Linux /proc). */
function threadsOf(pid: number): number {
  return readdirSync(`/proc/${pid}/task`).length;
}

/** The variables a process was started with (Linux /proc). */
function environmentOf(pid: number): Map<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter((e) => e.includes('='));
  return new Map(entries.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

/** The node's 'started' log line. */
function startedLine(node: NodeProcess): Record<string, unknown> {
  const lines = readFileSync(join(node.dataDir, NODE_LOG_FILE), 'utf8').split('\n').filter((l) => l.includes('"started"'));
  assert.equal(lines.length, 1, 'one started line');
  return JSON.parse(lines[0] as string) as Record<string, unknown>;
}

test('a spawned node runs with the pool size it is given, and says so in its log', { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-node-pool-'));
  const authoritiesDir = join(dir, 'authorities');
  saveDevelopmentAuthorities(await createDevelopmentAuthorities(), authoritiesDir);
  const saved = process.env['UV_THREADPOOL_SIZE'];
  const nodes: NodeProcess[] = [];
  const spawnWith = async (name: string, size: string | undefined): Promise<NodeProcess> => {
    if (size === undefined) delete process.env['UV_THREADPOOL_SIZE'];
    else process.env['UV_THREADPOOL_SIZE'] = size;
    const node = await spawnNode({ mainJs: MAIN_JS, dataDir: join(dir, name), authoritiesDir, host: '127.0.0.1' });
    nodes.push(node);
    return node;
  };
  try {
    const sized = await spawnWith('sized', undefined);
    const expected = nodeThreadPoolSize({});
    assert.equal(environmentOf(sized.pid).get('UV_THREADPOOL_SIZE'), expected);
    assert.equal(startedLine(sized)['threadPool'], Number(expected));

    // The operator's setting stands, and libuv honours it: two nodes that differ only in it differ
    // by exactly that many threads (the pool starts before a node's code runs, so both have it).
    const one = await spawnWith('one', '1');
    const nine = await spawnWith('nine', '9');
    assert.equal(environmentOf(one.pid).get('UV_THREADPOOL_SIZE'), '1');
    assert.equal(startedLine(one)['threadPool'], 1);
    assert.equal(startedLine(nine)['threadPool'], 9);
    assert.equal(threadsOf(nine.pid) - threadsOf(one.pid), 8);
  } finally {
    if (saved === undefined) delete process.env['UV_THREADPOOL_SIZE'];
    else process.env['UV_THREADPOOL_SIZE'] = saved;
    for (const node of nodes) await stopNode(node, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});
