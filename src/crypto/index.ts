// The crypto layer's public surface (docs/architecture.md §10: the bottom layer, on node:crypto). Everything
// above imports from here. Test-only hooks (signDigestWithNonceForTest, counterModePrfInput) are
// left out on purpose: import them from their modules in tests.

export { SecretBytes, constantTimeEqual, withSecret, secretKeyObject, secretKeyLength, type SecretKeyInput } from './secret_bytes.js';
export { kwWrap, kwUnwrap, kwpWrap, kwpUnwrap, KW_DATA_BYTES_MAX } from './aes_kw.js';
export { kdfCounterHmacSha256, deriveKeyCounterHmacSha256, KDF_OUTPUT_BYTES_MAX, type CounterBits, type CounterModeInput } from './kdf_sp800_108.js';
export { hkdfSha256, hkdfExtractSha256, hkdfExpandSha256, HKDF_SHA256_OUTPUT_BYTES_MAX } from './hkdf.js';
export {
  StreamSealer,
  StreamOpener,
  sealStream,
  openStream,
  sealedStreamLength,
  randomStreamPrefix,
  createSealTransform,
  createOpenTransform,
  AEAD_STREAM_PREFIX_BYTES,
  AEAD_TAG_BYTES,
  AEAD_SEGMENT_BYTES_DEFAULT,
  AEAD_SEGMENT_BYTES_MIN,
  AEAD_SEGMENT_BYTES_MAX,
  AEAD_SEGMENTS_MAX,
} from './aead_stream.js';
export { ecKeyPairDer, ecPrivateKeyPkcs8, ecPublicSpkiOfPrivate, ecSec1OfPkcs8 } from './ec_key_der.js';
export { kcvAes, kcvPublicKey, kcvSecret, checkKcv, KCV_BYTES } from './kcv.js';
export {
  signDigest,
  signDigestBatched,
  verifyDigest,
  ecPrivateScalarFromPkcs8,
  curveEncoding,
  generateEcPair,
  ECDSA_CURVES,
  ECDSA_DIGEST_BYTES_MAX,
  ECDSA_BATCH_SIGNATURES_MAX,
  type EcdsaCurve,
  type DsaEncoding,
  type NonceSource,
  type SignDigestOptions,
  type SignDigestBatchedOptions,
  type VerifyDigestOptions,
} from './ecdsa_raw.js';
