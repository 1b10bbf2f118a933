/**
 * The exporter listeners' access checks, in order: `--allow.net`,
 * `--web.tls.certmatch`, then the bearer token or the web configuration's
 * basic-auth users (client/modules/exporter_server.ts).
 *
 * @module
 */

import {
  type BasicAuthVerifier,
  constantTimeEqual,
  createBasicAuthVerifier,
  parseBasicAuth,
  parseBearer,
} from "../../lib/basic_auth.ts";
import type { AllowList } from "../../lib/cidr.ts";
import { peerIdentity } from "../../lib/tls_server.ts";
import type { WebConfig } from "../../lib/web_config.ts";

/** One listener's access settings. */
export interface Listener {
  /** Plain or TLS. */
  kind: "http" | "https";
  /** Its web configuration (basic-auth users), if any. */
  web: WebConfig | null;
  /** `--web.tls.certmatch`, on the TLS listener. */
  certMatch: RegExp | null;
}

/** Why a request is refused: the status, the message and extra headers. */
export interface Refusal {
  /** 401, 403 or 503. */
  status: number;
  /** Said in the body. */
  message: string;
  /** A `www-authenticate` challenge, for basic auth. */
  headers?: Record<string, string>;
}

/**
 * What the checks read of a request: a node:http `IncomingMessage` has it,
 * and so has the native module path's request (exporter_native.ts).
 */
export interface AuthRequest {
  /** The connection: the peer's address, and the TLS socket for certmatch. */
  readonly socket: { readonly remoteAddress?: string | undefined };
  /** The request's `authorization` header. */
  readonly headers: { readonly authorization?: string | undefined };
}

/** Checks one request; resolves null when it may pass. */
export type Authorizer = (req: AuthRequest, listener: Listener) => Promise<Refusal | null>;

/**
 * Says whether a verified client certificate matches `--web.tls.certmatch`:
 * its subject CN, a DNS SAN or an email SAN (as exporter_exporter).
 *
 * @param socket The TLS connection.
 * @param pattern The regexp.
 * @returns The names tried, and whether one matched.
 */
export function certMatches(
  socket: unknown,
  pattern: RegExp,
): { matched: boolean; names: string[] } {
  const peer = peerIdentity(socket);
  if (peer === null) return { matched: false, names: [] };
  const names = [peer.commonName, ...peer.dnsNames, ...peer.otherNames].filter((n) => n !== "");
  return { matched: names.some((name) => pattern.test(name)), names };
}

/**
 * Creates the checks of the exporter listeners.
 *
 * @param options `--allow.net` and the bearer token.
 * @returns The check for one request.
 */
export function createAuthorizer(
  options: { allowList?: AllowList | null; bearerToken?: string | null },
): Authorizer {
  const basicAuth: BasicAuthVerifier = createBasicAuthVerifier();
  return async function authorize(
    req: AuthRequest,
    listener: Listener,
  ): Promise<{ status: number; message: string; headers?: Record<string, string> } | null> {
    if (options.allowList && !options.allowList(req.socket.remoteAddress)) {
      return {
        status: 403,
        message: `Forbidden: ${req.socket.remoteAddress} is not in --allow.net`,
      };
    }
    if (listener.certMatch !== null) {
      const { matched, names } = certMatches(req.socket, listener.certMatch);
      if (!matched) {
        return {
          status: 403,
          message: `Forbidden: client certificate (${
            names.join(", ") || "none"
          }) does not match --web.tls.certmatch`,
        };
      }
    }
    const users = listener.web?.basicAuthUsers;
    const token = options.bearerToken ?? null;
    const hasUsers = users !== undefined && users.size > 0;
    if (token === null && !hasUsers) return null;
    const header = req.headers.authorization;
    const challenge = hasUsers
      ? { "www-authenticate": 'Basic realm="pushprox-client"' }
      : undefined;
    if (!header) {
      return {
        status: 401,
        message: "Authorization header is missing",
        ...(challenge ? { headers: challenge } : {}),
      };
    }
    const bearer = parseBearer(header);
    if (bearer !== null && token !== null) {
      return constantTimeEqual(bearer, token)
        ? null
        : { status: 401, message: "Invalid Bearer Token" };
    }
    const basic = parseBasicAuth(header);
    if (basic !== null && hasUsers) {
      const failure = await basicAuth.verify(users, basic);
      if (failure === null) return null;
      if (failure === "busy") {
        return { status: 503, message: "Too many password checks at once; retry" };
      }
      return {
        status: 401,
        message: "Invalid user name or password",
        ...(challenge ? { headers: challenge } : {}),
      };
    }
    return {
      status: 401,
      message: `Authorization header not of ${
        [token !== null ? "Bearer" : "", hasUsers ? "Basic" : ""].filter(Boolean).join(" or ")
      } type`,
      ...(challenge ? { headers: challenge } : {}),
    };
  };
}
