/**
 * What each {@linkcode CoordinatorError} kind means at the edges: one row per
 * kind with its HTTP status, Connect code, metric and log level, read by the
 * scrape handler, the Connect client service and the legacy endpoints.
 *
 * @module
 */

import { Code } from "@connectrpc/connect";
import type { CoordinatorError } from "./coordinator_error.ts";

/** A kind of {@linkcode CoordinatorError}. */
export type CoordinatorErrorKind = CoordinatorError["kind"];

/** How an edge reports one kind of coordinator error. */
export interface ErrorKindEntry {
  /** The HTTP status where the kind ends an HTTP request. */
  readonly status: number;
  /** The Connect code where the kind ends an RPC. */
  readonly code: Code;
  /**
   * The counter that counts the kind: `limit_hits` is
   * pushprox_proxy_limit_hits_total{limit}, `push_errors` is
   * pushprox_proxy_push_errors_total{reason}, `auth_failures` is
   * pushprox_proxy_auth_failures_total{reason}; null when none does.
   */
  readonly metric: "limit_hits" | "push_errors" | "auth_failures" | null;
  /** The counter's label value (or the kind itself when `metric` is null). */
  readonly label: string;
  /** The level of the log line that reports the refusal. */
  readonly level: "debug" | "info" | "warn";
}

function limit(label: string, status = 429, code = Code.ResourceExhausted): ErrorKindEntry {
  return { status, code, metric: "limit_hits", label, level: "warn" };
}

function push(label: string, status: number, code: Code): ErrorKindEntry {
  return { status, code, metric: "push_errors", label, level: "warn" };
}

/** The one table: every kind, how it is answered, counted and logged. */
export const ERROR_KINDS: Readonly<Record<CoordinatorErrorKind, ErrorKindEntry>> = {
  // Scrapes (Prometheus' side).
  unknown_client: {
    status: 404,
    code: Code.NotFound,
    metric: null,
    label: "unknown_client",
    level: "debug",
  },
  client_disconnected: {
    status: 503,
    code: Code.Unavailable,
    metric: null,
    label: "client_disconnected",
    level: "debug",
  },
  client_busy: limit("scrapes_per_client"),
  proxy_busy: limit("scrapes", 503),
  // Pushes (the client's side).
  unknown_scrape: push("unknown_scrape", 404, Code.NotFound),
  foreign_scrape: push("foreign_scrape", 403, Code.PermissionDenied),
  duplicate_push: push("duplicate_push", 409, Code.FailedPrecondition),
  invalid_status: push("invalid_status", 400, Code.InvalidArgument),
  invalid: push("invalid", 400, Code.InvalidArgument),
  // Registrations and streams.
  replaced: {
    status: 409,
    code: Code.AlreadyExists,
    metric: null,
    label: "replaced",
    level: "info",
  },
  draining: {
    status: 503,
    code: Code.Unavailable,
    metric: null,
    label: "draining",
    level: "debug",
  },
  credential_mismatch: {
    status: 403,
    code: Code.PermissionDenied,
    metric: "auth_failures",
    label: "forbidden",
    level: "warn",
  },
  invalid_identity: limit("poll_request_fields", 400, Code.InvalidArgument),
  too_many_clients: limit("clients"),
  registry_full: limit("registry_bytes"),
  too_many_from_source: limit("clients_per_source"),
  rate_limited: limit("registrations_per_source"),
};

/**
 * Returns the table's row for an error's kind.
 *
 * @param error A coordinator error.
 * @returns How to answer, count and log it.
 */
export function errorKind(error: CoordinatorError): ErrorKindEntry {
  return ERROR_KINDS[error.kind];
}

/**
 * The `reason` label of pushprox_proxy_push_errors_total for a refused push.
 *
 * @param error A coordinator error from `acceptPush`.
 * @returns The kind's label; "unknown_scrape" for kinds that are not push
 * errors (which `acceptPush` does not throw).
 */
export function pushErrorReason(error: CoordinatorError): string {
  const entry = ERROR_KINDS[error.kind];
  return entry.metric === "push_errors" ? entry.label : "unknown_scrape";
}

/** The label values of pushprox_proxy_push_errors_total the table can produce. */
export const PUSH_ERROR_REASONS: readonly string[] = Object.values(ERROR_KINDS)
  .filter((entry) => entry.metric === "push_errors")
  .map((entry) => entry.label);
