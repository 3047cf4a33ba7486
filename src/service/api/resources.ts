// Resource ids and ARNs in CloudHSM's shapes (docs/architecture.md §6, docs/api.md "Ids and ARNs").
//
// Ids are `cluster-`, `hsm-` or `backup-` followed by 11 to 16 characters of `[2-7a-zA-Z]` (the
// model's ClusterId, HsmId and BackupId patterns); Coffer makes them from the lower-case base32
// alphabet `[a-z2-7]` (32 symbols, 5 bits each) out of crypto-random bytes: 11 characters are 55
// bits, so two ids of one kind collide with probability about n²/2^56. ARNs are
// `arn:<partition>:cloudhsm:<region>:<account>:<kind>/<id>` (the model's CloudHsmArn pattern).

import { randomBytes } from 'node:crypto';
import { assert } from '../../assert.js';
import { apiFail } from './operations.js';
import { CLOUDHSMV2_MODEL } from './model.js';
import { wholePattern } from './validate.js';

export type ResourceKind = 'cluster' | 'hsm' | 'backup';
export const RESOURCE_KINDS: readonly ResourceKind[] = ['cluster', 'hsm', 'backup'];

/** Characters after the prefix of an id Coffer makes, and the model's bounds for any id. */
export const ID_CHARS_DEFAULT = 11;
export const ID_CHARS_MIN = 11;
export const ID_CHARS_MAX = 16;
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/** Random bytes for ids (injected in tests). */
export type RandomBytes = (length: number) => Uint8Array;
const systemRandomBytes: RandomBytes = (length) => new Uint8Array(randomBytes(length));

export function newId(kind: ResourceKind, chars: number = ID_CHARS_DEFAULT, random: RandomBytes = systemRandomBytes): string {
  assert(Number.isInteger(chars) && chars >= ID_CHARS_MIN && chars <= ID_CHARS_MAX, 'id length within the model bounds');
  const bytes = random(chars);
  assert(bytes.length === chars, 'random source gave the bytes asked for');
  let id = `${kind}-`;
  // 256 is a multiple of 32: the low five bits of a uniform byte are uniform.
  for (const b of bytes) id += ID_ALPHABET[b & 31];
  return id;
}

const ID_SHAPE: Readonly<Record<ResourceKind, string>> = { cluster: 'ClusterId', hsm: 'HsmId', backup: 'BackupId' };

/** True when `id` is an id of that kind in the model's shape. */
export function isId(kind: ResourceKind, id: string): boolean {
  const shape = CLOUDHSMV2_MODEL.shapes[ID_SHAPE[kind]];
  assert(shape?.type === 'string' && shape.pattern !== undefined, 'id shapes have patterns');
  return wholePattern(shape.pattern).test(id);
}

export interface Arn {
  readonly partition: 'aws' | 'aws-us-gov';
  readonly region: string;
  readonly accountId: string;
  readonly kind: ResourceKind;
  readonly id: string;
}

/** An AWS-style region name, as ARNs and SigV4 scopes carry it. */
export const REGION_PATTERN = /^[a-z]{2}(-(gov|isob|iso))?-(east|west|north|south|central){1,2}-[0-9]$/;
const REGION = REGION_PATTERN;
const ACCOUNT = /^[0-9]{12}$/;

export function buildArn(arn: Omit<Arn, 'partition'> & { readonly partition?: Arn['partition'] }): string {
  assert(REGION.test(arn.region) && ACCOUNT.test(arn.accountId) && isId(arn.kind, arn.id), 'ARN parts are well formed');
  const text = `arn:${arn.partition ?? 'aws'}:cloudhsm:${arn.region}:${arn.accountId}:${arn.kind}/${arn.id}`;
  assert(wholePattern(modelPattern('CloudHsmArn')).test(text), 'ARN fits the model');
  return text;
}

function modelPattern(shape: string): string {
  const s = CLOUDHSMV2_MODEL.shapes[shape];
  assert(s?.type === 'string' && s.pattern !== undefined, `${shape} has a pattern`);
  return s.pattern;
}

const ARN = /^arn:(aws|aws-us-gov):cloudhsm:([^:]+):([^:]+):(cluster|hsm|backup)\/(.+)$/;

/** Parses a CloudHSM ARN; anything else is CloudHsmInvalidRequestException. */
export function parseArn(text: string): Arn {
  const m = ARN.exec(text);
  const [, partition, region, accountId, kind, id] = m ?? [];
  if (m === null || region === undefined || !REGION.test(region) || accountId === undefined || !ACCOUNT.test(accountId)
    || kind === undefined || id === undefined || !isId(kind as ResourceKind, id)) {
    return apiFail('CloudHsmInvalidRequestException', 'The resource ARN is not a CloudHSM cluster, HSM or backup ARN');
  }
  return { partition: partition as Arn['partition'], region, accountId, kind: kind as ResourceKind, id };
}

/** A SourceBackupId (id or backup ARN, model shape BackupArn) as the backup id and, for an ARN,
 * the region and account it names. */
export function parseBackupReference(value: string): { readonly backupId: string; readonly arn?: Arn } {
  if (!value.startsWith('arn:')) {
    if (!isId('backup', value)) apiFail('CloudHsmInvalidRequestException', 'The backup id is not valid');
    return { backupId: value };
  }
  const arn = parseArn(value);
  if (arn.kind !== 'backup') apiFail('CloudHsmInvalidRequestException', 'The ARN is not a backup ARN');
  return { backupId: arn.id, arn };
}
