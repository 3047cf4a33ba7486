// The forms a secret could take where a test looks for it (a log, a database file, an archive): as
// text, and its bytes as hex, base64 and base64url; long ones in 24-character pieces too.

/** Every form a secret could take where it should not be: as text, and its bytes as hex, base64 and base64url. */
export function forms(secret: string | Uint8Array): string[] {
  const bytes = typeof secret === 'string' ? Buffer.from(secret) : Buffer.from(secret);
  const out = [bytes.toString('hex'), bytes.toString('base64').replace(/=+$/, ''), bytes.toString('base64url')];
  if (typeof secret === 'string') out.push(secret, JSON.stringify(secret).slice(1, -1));
  // A long secret is looked for in 24-character pieces too: a log line could hold part of it.
  return out.flatMap((f) => (f.length > 48 ? [f, ...Array.from({ length: Math.floor(f.length / 24) }, (_, i) => f.slice(i * 24, i * 24 + 24))] : [f]));
}
