// The network ids a cluster shows (service model: EniId, SecurityGroup, VpcId) in EC2's shape: a
// prefix and 17 random hex digits. CloudHSM's own ids (cluster-, hsm-, backup-) come from
// src/service/api/resources.ts.

import { randomBytes } from 'node:crypto';

/** ENI, security-group and VPC ids carry 17 hex digits, as EC2 issues them. */
const HEX_ID_DIGITS = 17;

export function newHexId(prefix: 'eni' | 'sg' | 'vpc'): string {
  return `${prefix}-${randomBytes(9).toString('hex').slice(0, HEX_ID_DIGITS)}`;
}
