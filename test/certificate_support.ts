// Certificates for the certificate-object tests, made by the OpenSSL CLI (an implementation
// independent of the code under test), with the fields OpenSSL itself reports for them.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificate {
  readonly der: Uint8Array;
  /** The private key, PEM (PKCS#8). */
  readonly keyPem: string;
  /** The serial number as `openssl x509 -serial` prints it (upper-case hex). */
  readonly serialHex: string;
}

/** A self-signed certificate for a new key: `ec` P-256 or `rsa` 2048, subject /CN=`cn`. */
export function selfSigned(kind: 'ec' | 'rsa', cn: string): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'coffer-cert-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.der');
    const newkey = kind === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
    execFileSync('openssl', ['req', '-x509', ...newkey, '-nodes', '-subj', `/CN=${cn}/O=Coffer test`, '-days', '30', '-keyout', key, '-outform', 'DER', '-out', cert], { stdio: 'pipe' });
    const serial = execFileSync('openssl', ['x509', '-inform', 'DER', '-in', cert, '-noout', '-serial'], { encoding: 'utf8' }).trim();
    return { der: new Uint8Array(readFileSync(cert)), keyPem: readFileSync(key, 'utf8'), serialHex: serial.replace(/^serial=/, '') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** DER of an INTEGER with the given big-endian magnitude (hex), as X.509 writes a positive serial. */
export function derInteger(hex: string): Uint8Array {
  let bytes = Buffer.from(hex.length % 2 === 1 ? '0' + hex : hex, 'hex');
  if ((bytes[0] ?? 0) & 0x80) bytes = Buffer.concat([Buffer.of(0), bytes]);
  return Uint8Array.from(Buffer.concat([Buffer.of(0x02, bytes.length), bytes]));
}
