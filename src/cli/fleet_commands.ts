// `coffer fleet register|list|deregister` (docs/fleet.md "Registering nodes", docs/cli.md): an
// operator's commands for a service that runs a remote fleet (`coffer service --fleet remote`).
// Each is one signed call to the service's API port, `X-Amz-Target: CofferFleetService.<Operation>`
// (AWS JSON 1.1, SigV4 with signing name `cloudhsm` and the service's region), with AWS credentials
// found as the AWS CLI finds them (src/client/control_plane.ts awsCredentials). Any service process
// of the region will do: the one that answers checks the node's attestation itself before the
// registry (in the shared metadata store) records it.
//
// stdout carries the answer as JSON (the node, or the list); a refusal is the service's CofferError
// (COFFER_FLEET_UNTRUSTED, COFFER_FLEET_NODE_NOT_BLANK, …) on stderr, exit 1, as if raised here; an
// AWS-level refusal (signature, access, a service without a remote fleet) is COFFER_SERVICE_REFUSED
// with its type. Nothing secret is printed: the credentials never leave the signing code.

import type { Command } from 'commander';
import { awsCredentials } from '../client/control_plane.js';
import { CofferError, ERRORS, fail, type ErrorCode, type ErrorDetail } from '../errors.js';
import { amzDate, authorization } from '../formats/sigv4.js';

/** The service answers in well under a second; a registration waits for the node's attestation. */
export const FLEET_CALL_TIMEOUT_MS = 60_000;
/** A list of REMOTE_NODES_MAX nodes is under 200 KiB; this bounds a wrong endpoint's answer. */
const FLEET_ANSWER_BYTES_MAX = 1024 * 1024;
const TARGET_PREFIX = 'CofferFleetService';
const REGION = /^[a-z]{2}(-gov)?-(east|west|north|south|central){1,2}-\d$/;
const DEVICE_ID = /^remote-[a-z2-7]{12}$/;

interface CallOptions {
  readonly endpointUrl?: string;
  readonly region?: string;
}

function usage(reason: string): never {
  return fail('COFFER_CLI_USAGE', { reason });
}

/** HOST:PORT, [IPv6]:PORT or IPv6:PORT (the last colon separates the port). */
export function hostPort(text: string, option: string): { readonly host: string; readonly port: number } {
  const colon = text.lastIndexOf(':');
  const host = (colon < 0 ? '' : text.slice(0, colon)).replace(/^\[(.*)\]$/, '$1');
  const portText = colon < 0 ? '' : text.slice(colon + 1);
  const port = Number(portText);
  if (!/^[0-9A-Za-z.:_-]{1,253}$/.test(host) || !/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) usage(`${option} must be HOST:PORT (port 1-65535)`);
  return { host, port };
}

function target(o: CallOptions): { readonly url: URL; readonly region: string } {
  if (o.endpointUrl === undefined) usage('--endpoint-url is required');
  let url: URL;
  try {
    url = new URL(o.endpointUrl);
  } catch {
    return usage('--endpoint-url must be an http(s) URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') usage('--endpoint-url must be an http(s) URL');
  const region = o.region ?? (process.env['AWS_REGION'] || process.env['AWS_DEFAULT_REGION']);
  if (region === undefined || region === '') usage('--region is required (or AWS_REGION)');
  if (!REGION.test(region)) usage('--region must be an AWS-style region, e.g. us-east-1');
  return { url, region };
}

/** One signed call; the JSON answer, or the service's refusal raised as a CofferError. */
async function call(o: CallOptions, operation: string, input: Record<string, unknown>): Promise<unknown> {
  const { url, region } = target(o);
  const credentials = awsCredentials(process.env);
  const body = Buffer.from(JSON.stringify(input), 'utf8');
  const date = amzDate(Date.now());
  // SigV4 names the signed headers in lower case, sorted.
  const headers: [string, string][] = [
    ['content-type', 'application/x-amz-json-1.1'], ['host', url.host], ['x-amz-date', date], ['x-amz-target', `${TARGET_PREFIX}.${operation}`],
  ];
  const auth = authorization({ method: 'POST', target: '/', headers, body }, headers.map(([n]) => n), credentials, region, 'cloudhsm', date);
  let res: Response;
  try {
    res = await fetch(new URL('/', url), { method: 'POST', headers: { ...Object.fromEntries(headers.filter(([n]) => n !== 'host')), authorization: auth }, body, signal: AbortSignal.timeout(FLEET_CALL_TIMEOUT_MS) });
  } catch (e) {
    return fail('COFFER_SERVICE_UNREACHABLE', { reason: e instanceof Error && e.name === 'TimeoutError' ? 'timeout' : 'connection failed' });
  }
  const json = await readJson(res);
  if (res.status === 200) return json;
  const answer = (typeof json === 'object' && json !== null ? json : {}) as { __type?: unknown; Message?: unknown; Detail?: unknown };
  const type = typeof answer.__type === 'string' ? answer.__type : String(res.status);
  if (Object.hasOwn(ERRORS, type)) throw new CofferError(type as ErrorCode, detailOf(answer.Detail));
  return fail('COFFER_SERVICE_REFUSED', { type, status: res.status, ...(typeof answer.Message === 'string' ? { message: answer.Message.slice(0, 300) } : {}) });
}

async function readJson(res: Response): Promise<unknown> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > FLEET_ANSWER_BYTES_MAX) fail('COFFER_SERVICE_REFUSED', { reason: 'answer too large', status: res.status });
  const bytes = Buffer.from(await res.arrayBuffer());
  if (bytes.length > FLEET_ANSWER_BYTES_MAX) fail('COFFER_SERVICE_REFUSED', { reason: 'answer too large', status: res.status });
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return fail('COFFER_SERVICE_REFUSED', { reason: 'answer is not JSON', status: res.status });
  }
}

/** The service's error detail, keeping only the flat facts an ErrorDetail holds. */
function detailOf(value: unknown): ErrorDetail {
  const out: Record<string, string | number | boolean> = {};
  if (typeof value !== 'object' || value === null) return out;
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
  return out;
}

function print(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

function withEndpoint(command: Command): Command {
  return command
    .option('--endpoint-url <url>', "the service's API endpoint, e.g. http://10.0.0.2:8223")
    .option('--region <region>', 'the region the service serves (default AWS_REGION, AWS_DEFAULT_REGION)');
}

export function registerFleetCommands(program: Command): void {
  const fleet = program.command('fleet').description("register, list and deregister the remote nodes of a service's fleet (coffer service --fleet remote)");
  withEndpoint(fleet.command('register'))
    .description('authenticate a running `coffer hsm serve` node by its attestation and add it to the fleet (it must be blank)')
    .option('--management <host:port>', "the node's management interface, as the service reaches it")
    .option('--data-plane <host:port>', 'where clients reach its data plane (default: what the node reports)')
    .action(async (o: CallOptions & { management?: string; dataPlane?: string }) => {
      if (o.management === undefined) usage('--management is required');
      const management = hostPort(o.management, '--management');
      const dataPlane = o.dataPlane === undefined ? undefined : hostPort(o.dataPlane, '--data-plane');
      print(await call(o, 'RegisterNode', {
        ManagementHost: management.host, ManagementPort: management.port,
        ...(dataPlane === undefined ? {} : { DataPlaneHost: dataPlane.host, DataPlanePort: dataPlane.port }),
      }));
    });
  withEndpoint(fleet.command('list'))
    .description('every registered node: its serial, endpoints, state (free, assigned, zeroise-owed) and the HSM it serves')
    .action(async (o: CallOptions) => {
      print(await call(o, 'ListNodes', {}));
    });
  withEndpoint(fleet.command('deregister'))
    .description('remove a node that serves no HSM from the fleet (the node itself is left as it is)')
    .option('--management <host:port>', 'the node, by the management endpoint it was registered with')
    .option('--device-id <id>', 'the node, by its fleet id (remote-…)')
    .action(async (o: CallOptions & { management?: string; deviceId?: string }) => {
      if ((o.management === undefined) === (o.deviceId === undefined)) usage('name the node by exactly one of --management or --device-id');
      if (o.deviceId !== undefined && !DEVICE_ID.test(o.deviceId)) usage('--device-id must be remote- and 12 of [a-z2-7]');
      const management = o.management === undefined ? undefined : hostPort(o.management, '--management');
      print(await call(o, 'DeregisterNode', management === undefined ? { DeviceId: o.deviceId } : { ManagementHost: management.host, ManagementPort: management.port }));
    });
}
