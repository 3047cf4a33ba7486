// A child process for archive_fs.test.ts: opens the filesystem archive in argv[2] and puts a body
// under argv[3] that never ends. It reports on stdout once a good part of the body is in the
// temporary file; the test then kills it with SIGKILL, the crash a put must survive.

import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { openFsArchive } from '../../src/storage/archive_fs.js';

const [directory, key] = process.argv.slice(2);
if (directory === undefined || key === undefined) throw new Error('usage: archive_fs_crash_writer <directory> <key>');

const CHUNK_BYTES = 64 * 1024;
/** Once this many bytes are in the temporary file the writer says so and keeps the put open. */
const REPORT_AFTER_BYTES = 512 * 1024;
const POLL_MS = 10;

function reportWhenWritten(dir: string): void {
  const temp = readdirSync(dir).find((n) => n.startsWith('.put-'));
  if (temp !== undefined && statSync(join(dir, temp)).size >= REPORT_AFTER_BYTES) process.stdout.write('writing\n');
  else setTimeout(() => reportWhenWritten(dir), POLL_MS);
}

const archive = await openFsArchive({ directory });
let sent = 0;
const body = new Readable({
  read() {
    if (sent >= REPORT_AFTER_BYTES) {
      if (sent === REPORT_AFTER_BYTES) reportWhenWritten(directory);
      sent += 1; // push nothing more: the put waits for the rest for ever
      return;
    }
    sent += CHUNK_BYTES;
    this.push(Buffer.alloc(CHUNK_BYTES, 0x5a));
  },
});
await archive.put(key, body);
