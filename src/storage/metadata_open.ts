// Opens the metadata store a service is configured with (docs/metadata-store.md "Configuring the
// service"): one setting names either a PostgreSQL URL or an SQLite file, so the service never
// chooses an adapter itself. Also gives the location in a form fit for a log line: a URL's password
// is never printed.

import { fail } from '../errors.js';
import type { MetadataStore } from './metadata_port.js';
import { PostgresMetadataStore } from './metadata_postgres.js';
import { SqliteMetadataStore } from './metadata_sqlite.js';

export interface MetadataLocationOptions {
  /** PostgreSQL only: the schema holding the tables (default POSTGRES_DEFAULT_SCHEMA). */
  readonly schema?: string;
}

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/** True when `location` names a PostgreSQL store (`postgres://…` or `postgresql://…`), not an SQLite file. */
export function isPostgresLocation(location: string): boolean {
  return POSTGRES_URL.test(location);
}

/**
 * `postgres://…` or `postgresql://…`: the PostgreSQL adapter on that database. `:memory:`: a private
 * in-memory SQLite store (tests). Anything else: the path of an SQLite file, created if absent.
 */
export async function openMetadataStore(location: string, options: MetadataLocationOptions = {}): Promise<MetadataStore> {
  if (location.length === 0) fail('COFFER_METADATA_INVALID', { field: 'location' });
  if (isPostgresLocation(location)) {
    return PostgresMetadataStore.open({ url: location, ...(options.schema === undefined ? {} : { schema: options.schema }) });
  }
  if (options.schema !== undefined) fail('COFFER_METADATA_INVALID', { field: 'schema', reason: 'only a PostgreSQL store has a schema' });
  return Promise.resolve(SqliteMetadataStore.open({ path: location }));
}

/** The location as a log line may show it: a URL without its password (and without its query,
 * which may carry one too); a path as it is. */
export function metadataLocationForLog(location: string): string {
  if (!isPostgresLocation(location)) return location;
  try {
    const url = new URL(location);
    if (url.password !== '') url.password = 'redacted';
    url.search = '';
    return url.toString();
  } catch {
    return 'postgres://(malformed URL)';
  }
}
