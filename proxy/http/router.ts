/**
 * The proxy's one route table: which route a request takes, who must
 * authenticate for it, how a refused credential is answered, whether the
 * native front door may serve it and how it is counted. Both edges ask it
 * (node:http in proxy/http/server.ts, the native front door through
 * {@linkcode nativeRouteOf}), so a path is decided in one place only.
 *
 * Upstream PushProx tells a scrape by its absolute-form target
 * (`r.URL.Host != ""`); so does the first entry here.
 *
 * @module
 */

import type { Role } from "../auth/auth.ts";
import {
  CONTENT_TYPE,
  isFastClientCall,
  POLL_PATH,
  PUSH_PATH,
} from "../connect/fast_client_service.ts";
import type { RequestHead } from "../../lib/request_head.ts";

/** What the route table sees of a request: the same on both edges. */
export interface RouteRequest {
  readonly method: string;
  /** The request target as sent (origin-form or absolute-form). */
  readonly target: string;
  /** The target's path, without the query (the target itself for absolute-form). */
  readonly path: string;
  /** 1 for HTTP/1.x, 2 for HTTP/2. */
  readonly httpVersionMajor: number;
  /** The (first) value of a header, or undefined. */
  header(name: string): string | undefined;
}

/** The routes of the proxy's port. */
export type RouteName =
  | "scrape"
  | "client_fast"
  | "client_connect"
  | "reader_connect"
  | "legacy"
  | "legacy_off"
  | "clients"
  | "metrics"
  | "status_page"
  | "health"
  | "not_found";

/**
 * How a refused credential is answered:
 * - `edge`: by the router (407 for scrapers, 401 for readers and clients,
 *   429 or 503 when throttled or busy), before the route's handler runs;
 * - `protocol`: by the handler, in its own protocol (Connect, gRPC-Web,
 *   gRPC: the connect-es interceptor or the fast path's refusal);
 * - `handler`: the handler asks the request's context when it knows what is
 *   asked for (legacy clients are authorized per fqdn).
 */
export type RefusalStyle = "edge" | "protocol" | "handler";

/** One entry of the route table. */
export interface Route {
  readonly name: RouteName;
  /** Whether a request takes this route (the first that matches wins). */
  readonly match: (request: RouteRequest) => boolean;
  /** Who must authenticate; null for routes open to all. */
  readonly role: Role | null;
  readonly refusal: RefusalStyle;
  /** Whether the native front door serves it (when the head's framing allows; see nativeRouteOf). */
  readonly native: boolean;
  /**
   * The `path` label of `pushprox_http_requests_total` and
   * `pushprox_http_duration_seconds`, counted once per request by the
   * router; null for routes counted elsewhere (scrapes by the scrape
   * handler, legacy by its handler, Connect not at all) or not at all (404).
   */
  readonly meter: (request: RouteRequest) => string | null;
}

/** Options for {@linkcode createRouteTable}. */
export interface RouteTableOptions {
  /** Serve upstream PushProx clients on `/poll` and `/push`. */
  legacy: boolean;
  /** Serve binary Connect Poll and Push on the fast path. */
  fastPath: boolean;
}

const noMeter = (): null => null;
const pathMeter = (request: RouteRequest): string => request.path;
const isLegacyPath = (path: string): boolean => path === "/poll" || path === "/push";

/**
 * Creates the route table, in the order it is tried. The last entry
 * matches every request.
 *
 * @param options Which optional protocols are served.
 * @returns The routes.
 */
export function createRouteTable(options: RouteTableOptions): readonly Route[] {
  const routes: (Route | null)[] = [
    {
      name: "scrape",
      match: (r) => !r.target.startsWith("/"),
      role: "scraper",
      refusal: "edge",
      native: true,
      meter: noMeter,
    },
    options.fastPath
      ? {
        name: "client_fast",
        match: (r) => isFastClientCall(r, r.path),
        role: "client",
        refusal: "protocol",
        native: true,
        meter: noMeter,
      }
      : null,
    {
      name: "client_connect",
      match: (r) => r.path.startsWith("/pushprox.v1.ClientService/"),
      role: "client",
      refusal: "protocol",
      native: false,
      meter: noMeter,
    },
    {
      name: "reader_connect",
      match: (r) => r.path.startsWith("/pushprox.v1."),
      role: "reader",
      refusal: "protocol",
      native: false,
      meter: noMeter,
    },
    options.legacy
      ? {
        name: "legacy",
        match: (r) => isLegacyPath(r.path),
        role: "client",
        refusal: "handler",
        native: false,
        meter: noMeter,
      }
      : {
        // Clients must authenticate here even when the protocol is off: the
        // answer to a wrong credential does not depend on the setting.
        name: "legacy_off",
        match: (r) => isLegacyPath(r.path),
        role: "client",
        refusal: "edge",
        native: false,
        meter: pathMeter,
      },
    {
      name: "clients",
      match: (r) => r.path === "/clients",
      role: "reader",
      refusal: "edge",
      native: true,
      meter: pathMeter,
    },
    {
      name: "metrics",
      match: (r) => r.path === "/metrics",
      role: "reader",
      refusal: "edge",
      native: true,
      meter: pathMeter,
    },
    {
      // The status page shows what ListClients does: same role, so that a
      // browser asks for the reader's credentials once and its fetches reuse them.
      name: "status_page",
      match: (r) => r.path === "/",
      role: "reader",
      refusal: "edge",
      native: false,
      meter: pathMeter,
    },
    {
      name: "health",
      match: (r) => r.path === "/-/healthy" || r.path === "/-/ready",
      role: null,
      refusal: "edge",
      native: true,
      meter: pathMeter,
    },
    {
      name: "not_found",
      match: () => true,
      role: null,
      refusal: "edge",
      native: true,
      meter: noMeter,
    },
  ];
  return routes.filter((route): route is Route => route !== null);
}

/**
 * The route a request takes.
 *
 * @param table The route table (its last entry matches everything).
 * @param request The request.
 * @returns The first route that matches.
 */
export function matchRoute(table: readonly Route[], request: RouteRequest): Route {
  for (const route of table) {
    if (route.match(request)) return route;
  }
  return table[table.length - 1]!;
}

/** The path of a request target: the target before `?`. */
export function targetPath(target: string): string {
  const query = target.indexOf("?");
  return query < 0 ? target : target.slice(0, query);
}

/** The route table's view of a head the native front door read. */
export function headRequest(head: RequestHead): RouteRequest {
  return {
    method: head.method,
    target: head.target,
    path: targetPath(head.target),
    httpVersionMajor: 1,
    header: (name) => head.headers.get(name)?.[0],
  };
}

/**
 * The route the native front door serves a request on, or null to hand the
 * connection to node:http: a route the table marks native, and a head
 * nothing of which node:http would have to decide. For a scrape, a GET or
 * HEAD of an absolute http URL without a body; for a fast-path Poll or Push,
 * one Host, one content type and a plain body framing; for the proxy's own
 * plain endpoints (`/clients`, `/metrics`, health, 404), one Host and a
 * plain body framing (a body is read and dropped by the edge).
 *
 * @param table The route table.
 * @param head The request head.
 * @returns The route, or null.
 */
export function nativeRouteOf(table: readonly Route[], head: RequestHead): Route | null {
  const route = matchRoute(table, headRequest(head));
  if (!route.native) return null;
  const h = head.headers;
  if (h.has("expect") || h.has("upgrade")) return null;
  const te = h.get("transfer-encoding");
  const length = h.get("content-length");
  if (route.name === "scrape") {
    if (head.method !== "GET" && head.method !== "HEAD") return null;
    if (!/^http:\/\//i.test(head.target) || te !== undefined) return null;
    if (length !== undefined && length.some((value) => value !== "0")) return null;
    return route;
  }
  const one = (name: string) => {
    const values = h.get(name);
    return values?.length === 1 ? values[0]! : values === undefined ? undefined : null;
  };
  if (one("host") == null) return null;
  if (route.name !== "client_fast") return plainFraming(te, length) ? route : null;
  if (one("content-type") !== CONTENT_TYPE) return null;
  if (head.target !== POLL_PATH && head.target !== PUSH_PATH) return null;
  const encoding = one("connect-content-encoding");
  if (encoding !== undefined && encoding !== "identity") return null;
  return length === undefined && te === undefined ? null : plainFraming(te, length) ? route : null;
}

/** A body framed by one `chunked` coding or one plain Content-Length, or no body. */
function plainFraming(
  te: readonly string[] | undefined,
  length: readonly string[] | undefined,
): boolean {
  if (te !== undefined) {
    return length === undefined && te.length === 1 && te[0]!.toLowerCase() === "chunked";
  }
  return length === undefined || (length.length === 1 && /^[0-9]{1,15}$/.test(length[0]!));
}
