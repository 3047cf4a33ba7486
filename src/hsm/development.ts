// Development provisioning: runs the manufacturer's and the operator's ceremonies in one process
// with development keys (marked "(DEVELOPMENT KEY)" in every certificate subject), so that the
// demo, the tests and the bench get a commissioned device in one call. Production ceremonies run
// offline with `coffer factory …` and `coffer operator …` (docs/ceremonies.md); nothing here is
// for real keys.

import { assert } from '../assert.js';
import { pemOf } from './x509.js';
import {
  BACKUP_KEY_BYTES, createManufacturer, createOperator, generateAkbkComponents, issueDeviceCertificate, issueOperatorCertificate, keyId, xorComponents,
  type AkbkComponents, type Manufacturer, type Operator,
} from './ceremony.js';
import { kcvAes } from '../crypto/kcv.js';
import { SecretBytes } from '../crypto/secret_bytes.js';
import type { FirmwareEvidence, SignedTranscript } from './provisioning.js';
import type { Hsm } from './device.js';
import type { Clock } from './ports.js';
import type { Mode } from './types.js';

/** A development manufacturer and operator, made once and reused for several devices. */
export interface DevelopmentAuthorities {
  readonly manufacturer: Manufacturer;
  readonly operator: Operator;
  /**
   * The operator's AKBK, one per operator (DESIGN.md §3), so that every device these authorities
   * commission restores the others' backups. A development shortcut: a production operator never
   * holds the AKBK whole, only its custodians' components. Absent, each device gets its own AKBK.
   */
  readonly akbk?: SecretBytes;
}

export async function createDevelopmentAuthorities(clock?: Clock): Promise<DevelopmentAuthorities> {
  const opts = { development: true, ...(clock === undefined ? {} : { clock }) };
  return { manufacturer: await createManufacturer(opts), operator: await createOperator(opts), akbk: SecretBytes.random(BACKUP_KEY_BYTES) };
}

/** Splits the operator's AKBK into `count` fresh XOR components (count − 1 random, the last one
 * completing the XOR), or makes a fresh AKBK when the authorities hold none. */
function akbkComponentsFor(akbk: SecretBytes | undefined, count: number): AkbkComponents {
  if (akbk === undefined || !Number.isInteger(count) || count < 2) return generateAkbkComponents(count); // which also refuses bad counts
  const random = Array.from({ length: count - 1 }, () => SecretBytes.random(BACKUP_KEY_BYTES));
  const components = [...random, xorComponents([akbk, ...random])];
  return { components, componentKcvs: components.map((c) => c.use(kcvAes)), akbkKcv: akbk.use(kcvAes), akbkKeyId: akbk.use(keyId) };
}

export interface CommissionOptions {
  readonly mode: Mode;
  /** Required for FIPS mode. */
  readonly firmware?: FirmwareEvidence;
  readonly custodians?: readonly string[];
  readonly clock?: Clock;
}

/**
 * Takes a NEW device through identity, manufacture and commissioning (two-person AKBK install with
 * one component per custodian). Returns the device's signed ceremony transcript.
 */
export async function provisionDevelopmentDevice(hsm: Hsm, authorities: DevelopmentAuthorities, options: CommissionOptions): Promise<SignedTranscript> {
  const { manufacturer, operator } = authorities;
  const clockOpt = options.clock === undefined ? {} : { clock: options.clock };
  const identity = await hsm.provisioning.generateIdentity();
  const deviceCert = await issueDeviceCertificate(manufacturer, identity.csrPem(), options.clock);
  await hsm.provisioning.manufacture({
    deviceCertificate: pemOf(deviceCert),
    manufacturerRoot: pemOf(manufacturer.rootCertificate),
    firmwareSigningPublicKey: manufacturer.firmwareSigningPublicKeySpki,
    mkbk: manufacturer.mkbk,
    mkbkKcv: manufacturer.mkbk.use(kcvAes),
  });
  const operatorCert = await issueOperatorCertificate(operator, pemOf(deviceCert), { manufacturerRoot: pemOf(manufacturer.rootCertificate), ...clockOpt });
  const custodians = options.custodians ?? ['custodian-1', 'custodian-2'];
  const akbk = akbkComponentsFor(authorities.akbk, custodians.length);
  try {
    const install = await hsm.provisioning.beginAkbkInstall({
      operatorCertificate: pemOf(operatorCert),
      operatorRoot: pemOf(operator.rootCertificate),
      mode: options.mode,
      ...(options.firmware === undefined ? {} : { firmware: options.firmware }),
      akbkKcv: akbk.akbkKcv,
      componentCount: custodians.length,
    });
    custodians.forEach((name, i) => {
      const component = akbk.components[i];
      const kcv = akbk.componentKcvs[i];
      assert(component !== undefined && kcv !== undefined, 'one component per custodian');
      component.use((bytes) => install.enterComponent(name, bytes, kcv));
    });
    return install.finish();
  } finally {
    for (const c of akbk.components) c.destroy();
  }
}
