// The SDK as an installed package is used (docs/sdk.md "Quick start"): `import { Cluster } from
// 'coffer/client'` through package.json's `exports`, with its types, and the `coffer` bin.
//
// The package is the real one: `npm pack` of this checkout (what `npm publish` would upload),
// unpacked into node_modules/coffer of a scratch project outside the repository. Its runtime
// dependencies are linked there from this checkout's node_modules rather than installed, so the test
// needs no registry and no network; everything else (the tarball's file list, the exports map, the
// .d.ts files, the bin path) is exactly what an `npm install` of the tarball would give.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sdk from '../../src/client/index.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const T = { timeout: 120_000 };

interface PackageJson {
  readonly version: string;
  readonly bin: Record<string, string>;
  readonly dependencies: Record<string, string>;
}

/** `npm pack` of the checkout into `dir`; returns the tarball's path and the files it holds. */
function pack(dir: string): { tarball: string; files: string[] } {
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const [info] = JSON.parse(out) as [{ filename: string; files: { path: string }[] }];
  return { tarball: join(dir, info.filename), files: info.files.map((f) => f.path) };
}

/** A scratch project with the tarball unpacked as node_modules/coffer and its dependencies linked. */
function scratchProject(dir: string, tarball: string): string {
  const project = join(dir, 'project');
  const installed = join(project, 'node_modules', 'coffer');
  mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
  const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as PackageJson;
  for (const dep of Object.keys(manifest.dependencies)) {
    mkdirSync(dirname(join(project, 'node_modules', dep)), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', dep), join(project, 'node_modules', dep), 'dir');
  }
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'scratch', version: '1.0.0', type: 'module', private: true }));
  return project;
}

function tsc(project: string, file: string): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [
    join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext',
    '--target', 'es2022', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules', '@types'), file,
  ], { cwd: project, encoding: 'utf8' });
  return { status: r.status, output: r.stdout + r.stderr };
}

test("the packed package: `import … from 'coffer/client'` works with its types, and the coffer bin runs", T, () => {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-package-'));
  try {
    const { tarball, files } = pack(dir);
    for (const f of ['package.json', 'dist/src/client/index.js', 'dist/src/client/index.d.ts', 'dist/src/cli/main.js']) assert.ok(files.includes(f), f);
    assert.equal(files.filter((f) => f.startsWith('dist/test/') || f.startsWith('dist/bench/')).length, 0, 'tests and bench stay out of the package');
    const project = scratchProject(dir, tarball);

    // Runtime: the exports map resolves coffer/client from outside the repository, to the SDK itself.
    writeFileSync(join(project, 'use.mjs'), "import * as sdk from 'coffer/client';\nconsole.log(JSON.stringify(Object.keys(sdk).sort()));\n");
    const names = JSON.parse(execFileSync(process.execPath, ['use.mjs'], { cwd: project, encoding: 'utf8' })) as string[];
    assert.deepEqual(names, Object.keys(sdk).sort());
    // Only what is exported is reachable: the package's insides are not part of its API.
    const inside = spawnSync(process.execPath, ['--input-type=module', '-e', "await import('coffer/dist/src/hsm/device.js')"], { cwd: project, encoding: 'utf8' });
    assert.match(inside.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/);

    // Types: a strict TypeScript consumer compiles against the package's .d.ts, and a wrong call does not.
    writeFileSync(join(project, 'good.ts'), [
      "import { Cluster, loadClusterConfig, type ClusterOptions } from 'coffer/client';",
      "const options: ClusterOptions = { ...loadClusterConfig('cluster.json'), credentials: { username: 'alice', password: 'pw' } };",
      'export const connecting: Promise<Cluster> = Cluster.connect(options);',
    ].join('\n'));
    const good = tsc(project, 'good.ts');
    assert.equal(good.status, 0, good.output);
    writeFileSync(join(project, 'bad.ts'), "import { Cluster } from 'coffer/client';\nexport const c = Cluster.connect({ endpoints: 5 });\n");
    const bad = tsc(project, 'bad.ts');
    assert.notEqual(bad.status, 0);
    assert.match(bad.output, /bad\.ts.*error TS2/);

    // The bin, as npm links it.
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'coffer', 'package.json'), 'utf8')) as PackageJson;
    const bin = join(project, 'node_modules', 'coffer', manifest.bin['coffer'] ?? '');
    assert.equal(execFileSync(process.execPath, [bin, '--version'], { cwd: project, encoding: 'utf8' }), `${manifest.version}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("inside the repository, coffer/client resolves to the same module through the package's own name", async () => {
  const specifier = 'coffer/client'; // a variable: resolved by Node at run time, not by the compiler
  const self = (await import(specifier)) as typeof sdk;
  assert.equal(self.Cluster, sdk.Cluster);
});
