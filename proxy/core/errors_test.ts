import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { CoordinatorError } from "./coordinator.ts";
import { ERROR_KINDS, errorKind, PUSH_ERROR_REASONS, pushErrorReason } from "./errors.ts";

Deno.test("pushErrorReason() gives duplicate_push its own label", () => {
  assert.equal(pushErrorReason(new CoordinatorError("x", "duplicate_push")), "duplicate_push");
  assert.equal(pushErrorReason(new CoordinatorError("x", "unknown_scrape")), "unknown_scrape");
  assert.equal(pushErrorReason(new CoordinatorError("x", "foreign_scrape")), "foreign_scrape");
  assert.equal(pushErrorReason(new CoordinatorError("x", "invalid")), "invalid");
  assert.equal(pushErrorReason(new CoordinatorError("x", "invalid_status")), "invalid_status");
});

Deno.test("ERROR_KINDS keeps the statuses and codes the edges answered with", () => {
  // The scrape handler's answers to requestScrape's refusals.
  assert.equal(ERROR_KINDS.unknown_client.status, 404);
  assert.equal(ERROR_KINDS.client_busy.status, 429);
  for (const kind of ["proxy_busy", "client_disconnected", "draining"] as const) {
    assert.equal(ERROR_KINDS[kind].status, 503, kind);
  }
  // The client service's answers to acceptPush's refusals.
  assert.equal(ERROR_KINDS.unknown_scrape.code, Code.NotFound);
  assert.equal(ERROR_KINDS.foreign_scrape.code, Code.PermissionDenied);
  assert.equal(ERROR_KINDS.invalid.code, Code.InvalidArgument);
  assert.equal(ERROR_KINDS.invalid_status.code, Code.InvalidArgument);
  assert.equal(ERROR_KINDS.duplicate_push.code, Code.FailedPrecondition);
  // Registrations.
  assert.equal(ERROR_KINDS.draining.code, Code.Unavailable);
  assert.equal(ERROR_KINDS.credential_mismatch.code, Code.PermissionDenied);
  assert.equal(ERROR_KINDS.replaced.code, Code.AlreadyExists);
  assert.equal(ERROR_KINDS.invalid_identity.code, Code.InvalidArgument);
  assert.equal(ERROR_KINDS.invalid_identity.status, 400);
  for (
    const kind of [
      "too_many_clients",
      "registry_full",
      "too_many_from_source",
      "rate_limited",
    ] as const
  ) {
    assert.equal(ERROR_KINDS[kind].code, Code.ResourceExhausted, kind);
    assert.equal(ERROR_KINDS[kind].status, 429, kind);
    assert.equal(ERROR_KINDS[kind].metric, "limit_hits", kind);
  }
});

Deno.test("errorKind() reads the row of the error's kind", () => {
  const entry = errorKind(new CoordinatorError("x", "rate_limited", 1_000));
  assert.deepEqual(entry, ERROR_KINDS.rate_limited);
  assert.equal(entry.label, "registrations_per_source");
});

Deno.test("PUSH_ERROR_REASONS lists every push label once", () => {
  assert.deepEqual(
    [...PUSH_ERROR_REASONS].sort(),
    ["duplicate_push", "foreign_scrape", "invalid", "invalid_status", "unknown_scrape"],
  );
});
