/**
 * Moved to lib/front_door.ts (shared with the client's exporter listener).
 *
 * @module
 */

export * from "../../lib/front_door.ts";
