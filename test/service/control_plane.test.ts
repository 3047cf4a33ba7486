// The control plane's lifecycle (control_plane_lifecycle.ts) on the embedded defaults: SQLite
// metadata in a file and the archive in a directory, both read back raw for the secret search.

import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openFsArchive } from '../../src/storage/archive_fs.js';
import { SqliteMetadataStore } from '../../src/storage/metadata_sqlite.js';
import { lifecycle } from './control_plane_lifecycle.js';

const files = (dir: string): string[] => readdirSync(dir).map((f) => join(dir, f)).filter((p) => statSync(p).isFile());

lifecycle({
  name: 'SQLite and a directory',
  openMetadata: (dir) => Promise.resolve(SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') })),
  openArchive: (dir) => openFsArchive({ directory: join(dir, 'archive') }),
  tamper: (_archive, key, dir) => {
    const name = key.replace('/', '~'); // the directory adapter's file name for a key (docs/archive.md)
    const file = join(dir, 'archive', readdirSync(join(dir, 'archive')).find((f) => f === name) ?? name);
    const blob = readFileSync(file);
    blob[blob.length - 200] = (blob[blob.length - 200] as number) ^ 1;
    writeFileSync(file, blob);
    return Promise.resolve();
  },
  contents: (_archive, dir) => {
    const places = [join(dir, 'metadata.sqlite'), join(dir, 'metadata.sqlite-wal'), ...files(join(dir, 'archive'))].filter(existsSync);
    return Promise.resolve(places.map((p) => readFileSync(p).toString('latin1')).join('\n'));
  },
});
