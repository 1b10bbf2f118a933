/**
 * The errors of the client's native calls to the proxy (Poll and Push on
 * client/transport/native_poll.ts and native_push.ts), shaped as connect-es'
 * `ConnectError`: the same codes (Connect's wire numbers), the same
 * `[code] message` text, `rawMessage` and `metadata`. The native path does
 * not load connect-es (8 MiB of RSS at start, issue #11); connect-es loads
 * only with the transport that needs it (client/transport/proxy_transport.ts),
 * and {@linkcode callErrorOf} reads an error of either kind.
 *
 * @module
 */

/** Connect's status codes, numbered as on the wire and in connect-es' `Code`. */
export const CallCode = {
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;

/** One of {@linkcode CallCode}'s values. */
export type CallCode = typeof CallCode[keyof typeof CallCode];

const NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(CallCode).map((
    [name, code],
  ) => [
    code,
    name[0]!.toLowerCase() + name.slice(1).replace(/[A-Z]/g, (c) => "_" + c.toLowerCase()),
  ]),
);
const CODES: ReadonlyMap<string, CallCode> = new Map([...NAMES].map(([code, name]) => [
  name,
  code as CallCode,
]));

/**
 * A code's wire name ("unavailable", "already_exists").
 *
 * @param code The code.
 * @returns Its name; the number as text for a code not known.
 */
export function codeName(code: number): string {
  return NAMES.get(code) ?? String(code);
}

/**
 * A code from its wire name.
 *
 * @param name The name ("unavailable").
 * @returns The code; Unknown for a name not known.
 */
export function codeFromName(name: string): CallCode {
  return CODES.get(name) ?? CallCode.Unknown;
}

/** A failed native call: a code and a message, as a `ConnectError`. */
export class CallError extends Error {
  /** The status code. */
  readonly code: CallCode;
  /** The message without the `[code]` prefix. */
  readonly rawMessage: string;
  /** Response headers that came with the failure, if any. */
  readonly metadata: Headers;

  /**
   * Creates the error.
   *
   * @param message What failed.
   * @param code The status code. @default {CallCode.Unknown}
   * @param metadata Response headers.
   */
  constructor(message: string, code: CallCode = CallCode.Unknown, metadata?: HeadersInit) {
    super(message === "" ? `[${codeName(code)}]` : `[${codeName(code)}] ${message}`);
    this.name = "ConnectError";
    this.code = code;
    this.rawMessage = message;
    this.metadata = new Headers(metadata ?? {});
  }
}

/** What {@linkcode callErrorOf} reads from a failed call. */
export interface CallFailure {
  code: number;
  rawMessage: string;
  metadata: Headers;
}

/**
 * The code, message and headers of a failed call: a {@linkcode CallError}
 * of the native path or a connect-es `ConnectError` of the other transport.
 *
 * @param error What the call threw.
 * @returns Its parts, or null for any other error.
 */
export function callErrorOf(error: unknown): CallFailure | null {
  if (error instanceof CallError) return error;
  if (!(error instanceof Error) || error.name !== "ConnectError") return null;
  const { code, rawMessage, metadata } = error as Partial<CallFailure>;
  if (typeof code !== "number" || typeof rawMessage !== "string") return null;
  return { code, rawMessage, metadata: metadata instanceof Headers ? metadata : new Headers() };
}
