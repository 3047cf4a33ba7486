// The console's one way to the service: the public CloudHSMv2 API (AWS JSON 1.1, POST / with
// X-Amz-Target: BaldrApiService.<Operation>), signed with SigV4 in this tab by the signer of
// @aws-sdk/client-cloudhsm-v2, and sent to the origin the page came from.
//
// Why not `client.send(new XCommand())` for everything: the SDK release bundled here models an
// older CloudHSMv2 (no cluster Mode, no BackupArn, no Put/Get/DeleteResourcePolicy), and its
// deserialisers drop members they do not know. The console takes the SDK's client for what it is
// good at — credentials, region, SHA-256 and the SigV4 signer, exactly as the SDK signs — and reads
// the service's JSON answers whole.
//
// The access key lives only in this module's closure for the tab's lifetime: never in storage, a
// cookie or the URL, and never sent (SigV4 sends a signature derived from it).

import { CloudHSMV2Client } from '@aws-sdk/client-cloudhsm-v2';

export const TARGET_PREFIX = 'BaldrApiService';
const CONTENT_TYPE = 'application/x-amz-json-1.1';
/** A call that takes longer than this is shown as failed (the service answers in milliseconds; a loaded machine may need seconds). */
export const CALL_TIMEOUT_MS = 60_000;

export interface Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly region: string;
}

/** An error answer of the API, or a failure to reach it: its type and the API's own message. */
export class ApiCallError extends Error {
  constructor(readonly type: string, message: string, readonly status: number) {
    super(message);
    this.name = 'ApiCallError';
  }
}

export type Json = Record<string, unknown>;

interface SigningRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: string;
}

interface Signer {
  sign(request: SigningRequest, options?: { signingDate?: Date }): Promise<SigningRequest>;
}

export interface Api {
  readonly region: string;
  readonly accessKeyId: string;
  /** `prefix`: the X-Amz-Target prefix; Coffer's own operations have their own (docs/console.md). */
  call(operation: string, input: Json, prefix?: string): Promise<Json>;
  /** A signed GET of one of Coffer's own routes on the same port (the audit log): its body as text. */
  getText(path: string, query?: Record<string, string>): Promise<string>;
}

/** Coffer's monitoring operations (the live figures), beside the CloudHSMv2 API on the same port. */
export const MONITORING_PREFIX = 'CofferMonitoringService';

/** A signed caller of the API at `origin` (the page's own). */
export function connect(credentials: Credentials, origin: string): Api {
  const client = new CloudHSMV2Client({
    region: credentials.region,
    endpoint: origin,
    credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey },
  });
  const url = new URL(origin);
  const config = client.config as unknown as { signer: () => Promise<Signer> };
  return {
    region: credentials.region,
    accessKeyId: credentials.accessKeyId,
    getText: async (path, query = {}) => {
      const request: SigningRequest = {
        method: 'GET', protocol: url.protocol, hostname: url.hostname, ...(url.port === '' ? {} : { port: Number(url.port) }),
        path, query, headers: { host: url.host }, body: '',
      };
      const signed = await (await config.signer()).sign(request, { signingDate: new Date() });
      const headers = Object.fromEntries(Object.entries(signed.headers).filter(([name]) => name.toLowerCase() !== 'host'));
      const target = new URL(path, origin);
      for (const [k, v] of Object.entries(query)) target.searchParams.set(k, v);
      let response: Response;
      try {
        response = await fetch(target, { method: 'GET', headers, credentials: 'omit', cache: 'no-store', signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
      } catch (e) {
        throw new ApiCallError('NetworkError', `The service could not be reached: ${e instanceof Error ? e.message : String(e)}`, 0);
      }
      const text = await response.text();
      if (!response.ok) {
        let answer: Json = {};
        try {
          answer = JSON.parse(text) as Json;
        } catch {
          // not JSON: the status says it
        }
        throw new ApiCallError(typeof answer.__type === 'string' ? answer.__type : `HTTP ${response.status}`, typeof answer.Message === 'string' ? answer.Message : `HTTP ${response.status}`, response.status);
      }
      return text;
    },
    call: async (operation, input, prefix = TARGET_PREFIX) => {
      const body = JSON.stringify(input);
      const request: SigningRequest = {
        method: 'POST',
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port === '' ? {} : { port: Number(url.port) }),
        path: '/',
        query: {},
        headers: { host: url.host, 'content-type': CONTENT_TYPE, 'x-amz-target': `${prefix}.${operation}` },
        body,
      };
      const signed = await (await config.signer()).sign(request, { signingDate: new Date() });
      // The browser sets Host itself (to the same value that was signed).
      const headers = Object.fromEntries(Object.entries(signed.headers).filter(([name]) => name.toLowerCase() !== 'host'));
      let response: Response;
      try {
        response = await fetch(new URL('/', origin), { method: 'POST', headers, body, credentials: 'omit', cache: 'no-store', signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
      } catch (e) {
        throw new ApiCallError('NetworkError', `The service could not be reached: ${e instanceof Error ? e.message : String(e)}`, 0);
      }
      const text = await response.text();
      let parsed: unknown;
      try {
        parsed = text === '' ? {} : JSON.parse(text);
      } catch {
        throw new ApiCallError('SerializationException', `The service answered HTTP ${response.status} with a body that is not JSON`, response.status);
      }
      const answer = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Json;
      if (!response.ok) {
        const type = (typeof answer.__type === 'string' ? answer.__type : `HTTP ${response.status}`).split('#').pop() ?? '';
        const message = typeof answer.Message === 'string' ? answer.Message : typeof answer.message === 'string' ? answer.message : `HTTP ${response.status}`;
        throw new ApiCallError(type, message, response.status);
      }
      return answer;
    },
  };
}

/** Every page of a Describe… or ListTags call, bounded: a console lists what a person can read. */
export async function allPages(api: Api, operation: string, input: Json, field: string, pagesMax = 20): Promise<Json[]> {
  const items: Json[] = [];
  let token: string | undefined;
  for (let page = 0; page < pagesMax; page++) {
    const answer = await api.call(operation, token === undefined ? input : { ...input, NextToken: token });
    const list = answer[field];
    if (Array.isArray(list)) items.push(...(list as Json[]));
    token = typeof answer.NextToken === 'string' && answer.NextToken !== '' ? answer.NextToken : undefined;
    if (token === undefined) break;
  }
  return items;
}
