// Finding a cluster's HSMs from the control plane (docs/sdk.md "Discovery"), as CloudHSM's client
// does from a cluster id: one DescribeClusters call, signed with SigV4 (src/formats/sigv4.ts) with
// the caller's AWS credentials, answered by the ACTIVE HSMs' EniIp on the cluster's data-plane port.
// The control plane only says where HSMs are; trust still comes from the customer CA alone, so a
// wrong answer can cost availability, never confidentiality.
//
// Credentials, as the AWS CLI finds them: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, else the
// profile AWS_PROFILE (default `default`) of the shared credentials file AWS_SHARED_CREDENTIALS_FILE
// (default ~/.aws/credentials) — or the file and profile a cluster config names.

import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CofferError } from '../errors.js';
import { amzDate, authorization, type SigningCredentials } from '../formats/sigv4.js';
import { endpointsFromDescribeClusters, type ClusterConfig } from './discovery.js';
import type { Endpoint } from './node_link.js';

/** A DescribeClusters answer for one cluster is a few KiB; this bounds a wrong endpoint's answer. */
const DESCRIBE_RESPONSE_BYTES_MAX = 1024 * 1024;
/** How long the control plane has to answer. */
export const DISCOVERY_TIMEOUT_MS = 30_000;
/** A credentials file is a few lines. */
const CREDENTIALS_FILE_BYTES_MAX = 64 * 1024;

export interface ServiceLocation {
  /** The control plane's endpoint URL (http:// or https://). */
  readonly endpoint: string;
  readonly region: string;
  readonly clusterId: string;
  /** The cluster's data-plane port (CloudHSM's is 2223). */
  readonly port: number;
}

const invalid = (reason: string): CofferError => new CofferError('COFFER_CLIENT_CONFIG_INVALID', { reason });

/** The ACTIVE HSMs of the cluster, as the control plane reports them now. */
export async function discoverEndpoints(location: ServiceLocation, credentials: SigningCredentials): Promise<Endpoint[]> {
  const body = Buffer.from(JSON.stringify({ Filters: { clusterIds: [location.clusterId] } }), 'utf8');
  const answer = await post(location, credentials, 'DescribeClusters', body);
  return endpointsFromDescribeClusters(answer, { port: location.port, clusterId: location.clusterId });
}

/** AWS credentials from the environment or a shared credentials file (see the header). */
export function awsCredentials(env: NodeJS.ProcessEnv, file?: { readonly path: string; readonly profile: string }): SigningCredentials {
  const id = env['AWS_ACCESS_KEY_ID'];
  const secret = env['AWS_SECRET_ACCESS_KEY'];
  if (file === undefined && id !== undefined && id !== '' && secret !== undefined && secret !== '') return { accessKeyId: id, secretAccessKey: secret };
  const path = file?.path ?? (env['AWS_SHARED_CREDENTIALS_FILE'] || join(homedir(), '.aws', 'credentials'));
  const profile = file?.profile ?? (env['AWS_PROFILE'] || 'default');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new CofferError('COFFER_CLIENT_CONFIG_UNREADABLE', { file: 'aws-credentials' });
  }
  if (text.length > CREDENTIALS_FILE_BYTES_MAX) throw invalid('AWS credentials file is too large');
  const section = iniSection(text, profile);
  const accessKeyId = section.get('aws_access_key_id');
  const secretAccessKey = section.get('aws_secret_access_key');
  if (accessKeyId === undefined || secretAccessKey === undefined) throw invalid(`AWS credentials file has no keys for profile ${profile}`);
  return { accessKeyId, secretAccessKey };
}

/** The `key = value` lines of `[profile]` in an INI text. */
function iniSection(text: string, profile: string): Map<string, string> {
  const values = new Map<string, string>();
  let inside = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      inside = header[1]?.trim() === profile;
      continue;
    }
    const eq = line.indexOf('=');
    if (inside && eq > 0) values.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return values;
}

/** One signed AWS JSON 1.1 call; the parsed answer, or COFFER_CLUSTER_UNAVAILABLE with the AWS error type. */
function post(location: ServiceLocation, credentials: SigningCredentials, operation: string, body: Buffer): Promise<unknown> {
  let url: URL;
  try {
    url = new URL(location.endpoint);
  } catch {
    throw invalid('service endpoint is not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid('service endpoint must be http:// or https://');
  const date = amzDate(Date.now());
  // SigV4 names the signed headers in lower case, sorted.
  const headers: [string, string][] = [
    ['content-type', 'application/x-amz-json-1.1'], ['host', url.host], ['x-amz-date', date], ['x-amz-target', `BaldrApiService.${operation}`],
  ];
  const auth = authorization({ method: 'POST', target: '/', headers, body }, headers.map(([n]) => n), credentials, location.region, 'cloudhsm', date);
  const send = url.protocol === 'https:' ? httpsRequest : request;
  return new Promise((resolve, reject) => {
    const req = send(url, { method: 'POST', path: '/', headers: { ...Object.fromEntries(headers), authorization: auth, 'content-length': String(body.length) }, timeout: DISCOVERY_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes > DESCRIBE_RESPONSE_BYTES_MAX) req.destroy(new Error('answer too large'));
        else chunks.push(c);
      });
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          reject(new CofferError('COFFER_CLUSTER_UNAVAILABLE', { reason: 'control plane answer is not JSON' }));
          return;
        }
        if (res.statusCode !== 200) reject(new CofferError('COFFER_CLUSTER_UNAVAILABLE', { reason: 'control plane refused', type: awsErrorType(json, res.statusCode) }));
        else resolve(json);
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => reject(new CofferError('COFFER_CLUSTER_UNAVAILABLE', { reason: 'control plane unreachable', errno: errnoOf(e) })));
    req.end(body);
  });
}

/**
 * The endpoints to connect to: asked of the control plane when the config names one (an HSM added
 * or replaced since the file was written is found), else the ones the file lists. When the control
 * plane cannot be reached and the file lists HSMs, those are used.
 */
export async function clusterEndpoints(config: ClusterConfig, env: NodeJS.ProcessEnv): Promise<readonly Endpoint[]> {
  const service = config.service;
  if (service === undefined) return config.endpoints;
  try {
    return await discoverEndpoints(service, awsCredentials(env, service.credentialsFile));
  } catch (e) {
    if (config.endpoints.length > 0) return config.endpoints;
    throw e;
  }
}

/** The AWS error type of a refusal (`__type`), or its HTTP status. */
function awsErrorType(json: unknown, status: number | undefined): string {
  const type = (json as { __type?: unknown } | null)?.__type;
  return typeof type === 'string' ? type : String(status);
}

function errnoOf(e: Error): string {
  const code: unknown = (e as { code?: unknown }).code;
  return typeof code === 'string' ? code : 'unknown';
}
