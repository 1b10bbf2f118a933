/**
 * Moved to lib/request_head.ts (shared with the client's exporter listener).
 *
 * @module
 */

export * from "../../lib/request_head.ts";
