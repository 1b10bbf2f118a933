/**
 * Moved to lib/conn_socket.ts (shared with the client's exporter listener).
 *
 * @module
 */

export * from "../../lib/conn_socket.ts";
