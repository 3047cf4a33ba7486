// The PostgreSQL server the tests use (docs/metadata-store.md "Tests"): its URL, and the check that
// it answers, which fails a test file with a message saying how to start it (never a silent skip).

export const POSTGRES_URL = process.env['COFFER_TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Fails with a clear message when the server does not answer on `admin` (a pg Pool or Client). */
export async function requirePostgres(admin: { query(sql: string): Promise<unknown> }, who: 'This test needs' | 'These tests need'): Promise<void> {
  try {
    await admin.query('SELECT 1');
  } catch (e) {
    const where = new URL(POSTGRES_URL);
    throw new Error(
      `PostgreSQL is not reachable at ${where.hostname}:${where.port || 5432}${where.pathname} (${(e as Error).message}). ` +
        `${who} a real server: run .ci/start-postgres, or set COFFER_TEST_POSTGRES_URL.`,
    );
  }
}
