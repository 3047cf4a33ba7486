// Shared by the API server tests: a recording implementation of the operations (the control plane
// stands behind this contract; here each operation records its calls and returns a canned answer
// that fills every member of its output shape), a server on a loopback port with a pino logger
// writing into memory, and signed raw requests made with the AWS SDK's own SigV4 signer.

import { Writable } from 'node:stream';
import { createHash, createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import pino, { type Logger } from 'pino';
import { SignatureV4 } from '@smithy/signature-v4';
import { OPERATION_NAMES, type ApiInput, type ApiOutput, type Caller, type OperationName, type Operations } from '../../../src/service/api/operations.js';
import { startApiServer, type RunningApiServer } from '../../../src/service/api/server.js';
import type { AccessKey } from '../../../src/service/api/sigv4.js';

export const REGION = 'eu-west-2';
export const ACCOUNT = '111122223333';
export const ADMIN: AccessKey = {
  accessKeyId: 'AKIAADMINEXAMPLE0001', secretAccessKey: 'adminSecretExample/K7MDENG+bPxRfiCYEXAMPLE', accountId: ACCOUNT, actions: ['*'],
};
export const READER: AccessKey = {
  accessKeyId: 'AKIAREADEREXAMPLE001', secretAccessKey: 'readerSecretExample/K7MDENG+bPxRfiCYEXAMPL', accountId: '444455556666',
  actions: ['cloudhsm:DescribeClusters', 'cloudhsm:DescribeBackups'],
};

export const CLUSTER_ID = 'cluster-abcdefgh2345';
export const HSM_ID = 'hsm-abcdefgh2345';
export const BACKUP_ID = 'backup-abcdefgh2345';
const T1 = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 250));
const T2 = new Date(Date.UTC(2026, 1, 3, 4, 5, 6));
const TAGS = [{ Key: 'team', Value: 'payments' }, { Key: 'empty', Value: '' }];
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ4Qk\n-----END CERTIFICATE-----\n';

export const HSM = {
  AvailabilityZone: 'eu-west-2a', ClusterId: CLUSTER_ID, SubnetId: 'subnet-0123abcd', EniId: 'eni-0123abcd', EniIp: '127.0.0.2',
  EniIpV6: '::1', HsmId: HSM_ID, HsmType: 'hsm2m.medium', State: 'ACTIVE', StateMessage: 'HSM is active',
};
export const CLUSTER = {
  BackupPolicy: 'DEFAULT', BackupRetentionPolicy: { Type: 'DAYS', Value: '90' }, ClusterId: CLUSTER_ID, CreateTimestamp: T1,
  Hsms: [HSM], HsmType: 'hsm2m.medium', HsmTypeRollbackExpiration: T2, PreCoPassword: 'precopass', SecurityGroup: 'sg-0123abcd',
  SourceBackupId: BACKUP_ID, State: 'ACTIVE', StateMessage: 'Cluster is active', SubnetMapping: { 'eu-west-2a': 'subnet-0123abcd' },
  VpcId: 'vpc-0123abcd', NetworkType: 'IPV4',
  Certificates: { ClusterCsr: CERT, HsmCertificate: CERT, AwsHardwareCertificate: CERT, ManufacturerHardwareCertificate: CERT, ClusterCertificate: CERT },
  TagList: TAGS, Mode: 'FIPS',
};
export const BACKUP = {
  BackupId: BACKUP_ID, BackupArn: `arn:aws:cloudhsm:${REGION}:${ACCOUNT}:backup/${BACKUP_ID}`, BackupState: 'READY', ClusterId: CLUSTER_ID,
  CreateTimestamp: T1, CopyTimestamp: T2, NeverExpires: false, SourceRegion: 'eu-west-1', SourceBackup: 'backup-zyxwvuts7654',
  SourceCluster: 'cluster-zyxwvuts7654', DeleteTimestamp: T2, TagList: TAGS, HsmType: 'hsm2m.medium', Mode: 'FIPS',
};
export const POLICY = '{"Version":"2012-10-17","Statement":[]}';

/** A canned answer per operation, filling every member its output shape has. */
export const CANNED: Readonly<Record<OperationName, ApiOutput>> = {
  CopyBackupToRegion: { DestinationBackup: { CreateTimestamp: T1, SourceRegion: REGION, SourceBackup: BACKUP_ID, SourceCluster: CLUSTER_ID } },
  CreateCluster: { Cluster: CLUSTER },
  CreateHsm: { Hsm: HSM },
  DeleteBackup: { Backup: BACKUP },
  DeleteCluster: { Cluster: CLUSTER },
  DeleteHsm: { HsmId: HSM_ID },
  DeleteResourcePolicy: { ResourceArn: BACKUP.BackupArn, Policy: POLICY },
  DescribeBackups: { Backups: [BACKUP], NextToken: 'v1.page2' },
  DescribeClusters: { Clusters: [CLUSTER], NextToken: 'v1.page2' },
  GetResourcePolicy: { Policy: POLICY },
  InitializeCluster: { State: 'INITIALIZE_IN_PROGRESS', StateMessage: 'Initializing' },
  ListTags: { TagList: TAGS, NextToken: 'v1.page2' },
  ModifyBackupAttributes: { Backup: BACKUP },
  ModifyCluster: { Cluster: CLUSTER },
  PutResourcePolicy: { ResourceArn: BACKUP.BackupArn, Policy: POLICY },
  RestoreBackup: { Backup: BACKUP },
  TagResource: {},
  UntagResource: {},
};

export interface RecordedCall {
  readonly operation: OperationName;
  readonly input: ApiInput;
  readonly caller: Caller;
}

/** Operations that record each call; `behaviour` may replace an operation's answer. */
export class RecordingOperations {
  readonly calls: RecordedCall[] = [];
  readonly behaviour = new Map<OperationName, (input: ApiInput, caller: Caller) => Promise<ApiOutput>>();

  get operations(): Operations {
    return Object.fromEntries(OPERATION_NAMES.map((operation) => [operation, async (input: ApiInput, caller: Caller) => {
      this.calls.push({ operation, input, caller });
      const override = this.behaviour.get(operation);
      return override === undefined ? CANNED[operation] : override(input, caller);
    }])) as unknown as Operations;
  }
}

/** Log lines captured in memory (JSON objects), with the raw text for secret searches. */
export class MemoryLog {
  readonly text: string[] = [];
  readonly logger: Logger;
  constructor() {
    const sink = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        this.text.push(chunk.toString('utf8'));
        callback();
      },
    });
    this.logger = pino({ level: 'debug', messageKey: 'message' }, sink);
  }
  get lines(): Record<string, unknown>[] {
    return this.text.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  calls(): Record<string, unknown>[] {
    return this.lines.filter((l) => l.message === 'api call');
  }
}

export interface TestApi {
  readonly server: RunningApiServer;
  readonly ops: RecordingOperations;
  readonly log: MemoryLog;
  clockMs: number;
}

export async function startTestApi(options: { readonly bodyTimeoutMs?: number; readonly connectionsMax?: number } = {}): Promise<TestApi> {
  const ops = new RecordingOperations();
  const log = new MemoryLog();
  const api = { ops, log, clockMs: Date.now() } as TestApi & { server: RunningApiServer };
  api.server = await startApiServer({
    host: '127.0.0.1', port: 0, operations: ops.operations, accessKeys: [ADMIN, READER], region: REGION,
    clock: { nowMs: () => api.clockMs }, logger: log.logger, ...options,
  });
  return api;
}

export class NodeSha256 {
  readonly #hash;
  constructor(secret?: unknown) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', Buffer.from(secret as Uint8Array | string));
  }
  update(data: Uint8Array | string): void {
    this.#hash.update(data);
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#hash.digest()));
  }
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  readonly json: Record<string, unknown> | undefined;
}

export interface SignedRequestOptions {
  readonly target?: string;
  readonly body?: string | Buffer;
  readonly key?: AccessKey;
  readonly region?: string;
  readonly service?: string;
  readonly signingDate?: Date;
  readonly headers?: Record<string, string>;
  readonly method?: string;
  readonly path?: string;
  /** The query, signed as the SDK signs one (sent after `path`). */
  readonly query?: Record<string, string>;
  /** Aborts the request (the client leaves). */
  readonly signal?: AbortSignal;
  /** Changes the request after it was signed. */
  readonly tamper?: (headers: Record<string, string>, body: Buffer) => { headers: Record<string, string>; body: Buffer };
}

/** A request signed by @smithy/signature-v4 (the AWS SDK's signer), sent over node:http. */
export async function signedRequest(url: string, options: SignedRequestOptions): Promise<RawResponse> {
  const endpoint = new URL(url);
  const key = options.key ?? ADMIN;
  const body = Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body ?? '{}', 'utf8');
  const headers: Record<string, string> = {
    host: endpoint.host,
    'content-type': 'application/x-amz-json-1.1',
    ...(options.target === undefined ? {} : { 'x-amz-target': options.target }),
    ...options.headers,
  };
  const signer = new SignatureV4({
    credentials: { accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
    region: options.region ?? REGION, service: options.service ?? 'cloudhsm', sha256: NodeSha256,
  });
  const signed = await signer.sign({
    method: options.method ?? 'POST', protocol: 'http:', hostname: endpoint.hostname, port: Number(endpoint.port),
    path: options.path ?? '/', headers, body, ...(options.query === undefined ? {} : { query: options.query }),
  }, options.signingDate === undefined ? {} : { signingDate: options.signingDate });
  let finalHeaders = signed.headers as Record<string, string>;
  let finalBody = body;
  if (options.tamper !== undefined) ({ headers: finalHeaders, body: finalBody } = options.tamper({ ...finalHeaders }, body));
  const query = options.query === undefined ? '' : `?${new URLSearchParams(options.query).toString()}`;
  return rawRequest(url, { method: options.method ?? 'POST', path: `${options.path ?? '/'}${query}`, headers: finalHeaders, body: finalBody, ...(options.signal === undefined ? {} : { signal: options.signal }) });
}

/** A request exactly as given (no signature unless the headers carry one). */
export function rawRequest(url: string, options: { method?: string; path?: string; headers: Record<string, string>; body?: Buffer | string; signal?: AbortSignal }): Promise<RawResponse> {
  const endpoint = new URL(url);
  const body = Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body ?? '', 'utf8');
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: endpoint.hostname, port: Number(endpoint.port), method: options.method ?? 'POST', path: options.path ?? '/',
      headers: { ...options.headers, 'content-length': String(body.length) },
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> | undefined;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
