// The errors the API layer itself reports, before a request reaches an operation: AWS's common
// errors of the JSON 1.1 protocol and of SigV4 (docs/api.md "Errors"). An operation's own failures
// are `ApiError`s of the service model (CloudHsm*Exception, src/service/api/operations.ts); both are
// sent as `{"__type": type, "Message": message}` with the status given here.
//
// Messages are fixed text or name a member path and a limit; they never repeat a value the caller
// sent (a mistyped secret in the wrong field must not come back in an error or a log line).

import type { ApiExceptionType } from './operations.js';

/** AWS's common error types the API layer uses, with the HTTP status AWS gives each. */
export const PROTOCOL_ERROR_STATUS = {
  // JSON 1.1 protocol: the request is not a well-formed call of a known operation.
  UnknownOperationException: 400,
  SerializationException: 400,
  ValidationException: 400,
  RequestEntityTooLargeException: 413,
  RequestTimeoutException: 408,
  // SigV4: who is calling, and may they.
  MissingAuthenticationTokenException: 403,
  IncompleteSignatureException: 403,
  InvalidSignatureException: 403,
  UnrecognizedClientException: 403,
  AccessDeniedException: 403,
} as const;
export type ProtocolErrorType = keyof typeof PROTOCOL_ERROR_STATUS;

/** Every `__type` the API can answer with. */
export type AnyErrorType = ProtocolErrorType | ApiExceptionType;

/** A request refused by the API layer (protocol, validation or authentication). */
export class ProtocolError extends Error {
  readonly type: ProtocolErrorType;
  constructor(type: ProtocolErrorType, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.type = type;
  }
  get status(): number {
    return PROTOCOL_ERROR_STATUS[this.type];
  }
}

export function protocolFail(type: ProtocolErrorType, message: string): never {
  throw new ProtocolError(type, message);
}

/** HTTP status of a service-model exception: the model marks only the internal failure as a fault
 * (`"fault": true`), and the CloudHSM API Reference gives it 500; every other one is 400. */
export function apiErrorStatus(type: ApiExceptionType): number {
  return type === 'CloudHsmInternalFailureException' ? 500 : 400;
}

/** The message of every internal failure: nothing of what went wrong leaves the service. */
export const INTERNAL_FAILURE_MESSAGE = 'The request was rejected because of an internal failure. The request can be retried.';
