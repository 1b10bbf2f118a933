/**
 * The error the coordinator and its session registry report to the adapters,
 * with a machine-readable kind (see proxy/core/errors.ts for what each kind
 * means at the edges).
 *
 * @module
 */

/** Base class of the errors the coordinator reports to its adapters. */
export class CoordinatorError extends Error {
  /** Creates the error with a machine-readable kind. */
  constructor(
    message: string,
    readonly kind:
      | "unknown_client"
      | "client_disconnected"
      | "unknown_scrape"
      | "foreign_scrape"
      | "duplicate_push"
      | "replaced"
      | "draining"
      | "credential_mismatch"
      | "too_many_clients"
      | "client_busy"
      | "proxy_busy"
      | "invalid_status"
      | "invalid"
      | "invalid_identity"
      | "registry_full"
      | "too_many_from_source"
      | "rate_limited",
    /** For "rate_limited": when a registration from this source would pass. */
    readonly retryAfterMs: number = 0,
  ) {
    super(message);
    this.name = "CoordinatorError";
  }
}
