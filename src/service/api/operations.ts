// The contract between the CloudHSMv2 API layer (HTTP, SigV4, JSON 1.1, validation against the
// service model: src/service/api/) and the control plane that carries out operations
// (src/service/). The API layer hands an operation a request it has already validated — every
// required member present, every member of its shape's type, pattern, enum and length — and
// serialises what the operation returns; an operation fails with a CloudHsm* error
// (`apiFail`), never with a raw exception.

/** The 18 operations of the CloudHSMv2 service model (API version 2017-04-28). */
export const OPERATION_NAMES = [
  'CopyBackupToRegion', 'CreateCluster', 'CreateHsm', 'DeleteBackup', 'DeleteCluster', 'DeleteHsm', 'DeleteResourcePolicy',
  'DescribeBackups', 'DescribeClusters', 'GetResourcePolicy', 'InitializeCluster', 'ListTags', 'ModifyBackupAttributes',
  'ModifyCluster', 'PutResourcePolicy', 'RestoreBackup', 'TagResource', 'UntagResource',
] as const;
export type OperationName = (typeof OPERATION_NAMES)[number];

/** The exceptions of the service model, sent as `{"__type","Message"}`: HTTP 400, except the
 * internal failure (a fault in the model), which is 500 (docs/api.md "Errors"). */
export type ApiExceptionType =
  | 'CloudHsmAccessDeniedException' | 'CloudHsmInternalFailureException' | 'CloudHsmInvalidRequestException'
  | 'CloudHsmResourceLimitExceededException' | 'CloudHsmResourceNotFoundException' | 'CloudHsmServiceException'
  | 'CloudHsmTagException';

/** An expected failure of an operation, as the API reports it. */
export class ApiError extends Error {
  readonly type: ApiExceptionType;
  constructor(type: ApiExceptionType, message: string) {
    super(message);
    this.name = 'ApiError';
    this.type = type;
  }
}

export function apiFail(type: ApiExceptionType, message: string): never {
  throw new ApiError(type, message);
}

/** Who called, after SigV4 verified the request. */
export interface Caller {
  readonly accountId: string;
  readonly accessKeyId: string;
  /** The region the request was signed for (the service's own). */
  readonly region: string;
  readonly requestId: string;
}

/** A validated request: JSON values, timestamps already as Date. */
export type ApiInput = Readonly<Record<string, unknown>>;
/** What an operation returns: JSON values, Date for timestamps (sent as epoch seconds). */
export type ApiOutput = Readonly<Record<string, unknown>>;

export type OperationHandler = (input: ApiInput, caller: Caller) => Promise<ApiOutput>;
export type Operations = Readonly<Record<OperationName, OperationHandler>>;
