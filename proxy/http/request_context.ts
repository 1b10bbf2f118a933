/**
 * Authentication, once per request, into one context every handler reads:
 * the router authenticates a request for its route's role (see
 * proxy/http/router.ts) and hands the outcome on as a
 * {@linkcode RequestContext}. Connect handlers read it through the
 * {@linkcode REQUEST} context value, the legacy handler through the request
 * it was made for; the {@linkcode ClientAuthorizer} answers what each
 * client protocol asks of it (may this principal register this fqdn, does
 * its credential still hold, which credential pushed).
 *
 * @module
 */

import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { ClientService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import type { HeaderPair } from "../../lib/http_exchange.ts";
import type { Logger } from "../../lib/logger.ts";
import type { PeerIdentity } from "../../lib/tls_server.ts";
import {
  type Authenticator,
  type AuthRequest,
  type AuthResult,
  type Principal,
  publicReason,
  registrationProblem,
  type Role,
} from "../auth/auth.ts";
import type { ProxyMetrics } from "../core/metrics.ts";
import { sourceKey } from "../core/rate_limit.ts";

/** What authentication needs of a request, on either edge. */
export interface Credentials {
  header(name: string): string | undefined;
  readonly peer: PeerIdentity | null;
  readonly remoteAddress: string | undefined;
  /** For logs. */
  readonly target: string;
}

/** One request's authentication and what handlers learn from the edge. */
export interface RequestContext {
  /** The role the route asks for; null for routes open to all. */
  readonly role: Role | null;
  /** What the request authenticates with. */
  readonly credentials: Credentials;
  /** The caller's source key (see sourceKey). */
  readonly source: string;
  /** The caller's address as "host:port" (for the registry). */
  readonly peerAddress: string;
  /**
   * The request's authentication result: computed on the first call, the
   * same promise after (refusals are counted and logged once).
   */
  authenticate(): Promise<AuthResult>;
  /** The result, once `authenticate` settled; null before (or for open routes). */
  readonly result: AuthResult | null;
  /** Authenticates again with the same credentials (revoked credentials end streams). */
  recheck(): Promise<AuthResult>;
  /** Called by a Push once its head matched a scrape: its deadline bounds the body from then. */
  bodyBound(): void;
}

/** The request context of a Connect call, set by the proxy's router. */
export const REQUEST: ReturnType<typeof createContextKey<RequestContext | null>> = createContextKey<
  RequestContext | null
>(null, { description: "pushprox request context" });

/** Options for {@linkcode createRequestAuth}. */
export interface RequestAuthOptions {
  auth: Authenticator;
  metrics: ProxyMetrics;
  logger: Logger;
}

/** Creates request contexts and answers refusals; see {@linkcode createRequestAuth}. */
export interface RequestAuth {
  /**
   * The context of one request.
   *
   * @param role The route's role; null for open routes.
   * @param credentials The request's credentials.
   * @param peerAddress The caller's "host:port".
   * @param bodyBound See RequestContext.bodyBound; called with `credentials`
   *   (a function shared by many requests may tell them apart by it).
   */
  context(
    role: Role | null,
    credentials: Credentials,
    peerAddress: string,
    bodyBound: (credentials: Credentials) => void,
  ): RequestContext;
  /** Counts and logs a refusal. */
  refused(role: Role, credentials: Credentials, result: AuthResult & { ok: false }): void;
  /**
   * The plain-HTTP answer to a refused credential: 407 for scrapers, 401
   * otherwise (one answer for every wrong credential: no user enumeration),
   * 429 when throttled, 503 when busy.
   */
  refusal(role: Role, path: string, result: AuthResult & { ok: false }): Refusal;
  /** The Connect error a call fails with for its result, or null when it may go on. */
  connectError(role: Role, result: AuthResult | null): ConnectError | null;
  /** Fails Connect calls whose authentication failed, in their own protocol. */
  readonly interceptor: Interceptor;
}

/** A plain-HTTP refusal. */
export interface Refusal {
  status: number;
  headers: HeaderPair[];
  text: string;
}

/**
 * The Connect code for a failed authentication. Readers get Unauthenticated
 * for every refused credential (one answer: no user enumeration).
 */
function authCode(role: Role, result: AuthResult & { ok: false }): Code {
  return result.kind === "busy"
    ? Code.Unavailable
    : result.kind === "throttled"
    ? Code.ResourceExhausted
    : result.kind === "forbidden" && role === "client"
    ? Code.PermissionDenied
    : Code.Unauthenticated;
}

/**
 * Creates the proxy's request authentication.
 *
 * @param options Authenticator, metrics and logger.
 * @returns Context factory and refusal answers.
 */
export function createRequestAuth(options: RequestAuthOptions): RequestAuth {
  const { auth, metrics, logger } = options;
  function authenticate(role: Role, credentials: Credentials): Promise<AuthResult> {
    return auth.authenticate(role, new CredentialsRequest(credentials));
  }
  function refused(role: Role, credentials: Credentials, result: AuthResult & { ok: false }) {
    if (result.kind === "throttled") metrics.limitHits.inc({ limit: "auth_failures_per_source" });
    else metrics.authFailures.inc({ role, reason: result.kind });
    logger.warn("Request refused", {
      role,
      remote: credentials.remoteAddress,
      target: credentials.target.slice(0, 200),
      reason: result.kind,
      err: result.reason,
    });
  }
  function connectError(role: Role, result: AuthResult | null): ConnectError | null {
    if (result === null) {
      return new ConnectError("Cannot authenticate the request", Code.Unauthenticated);
    }
    return result.ok
      ? null
      : new ConnectError(publicReason(role, auth.config[role], result), authCode(role, result));
  }
  return {
    refused,
    connectError,
    context(role, credentials, peerAddress, bodyBound) {
      return new Context(role, credentials, peerAddress, bodyBound, authenticate, refused);
    },
    refusal(role, path, result) {
      const status = result.kind === "busy"
        ? 503
        : result.kind === "throttled"
        ? 429
        : role === "scraper"
        ? 407
        : 401;
      const headers: HeaderPair[] = [["content-type", "text/plain; charset=utf-8"]];
      if (status === 407) headers.push(["proxy-authenticate", 'Basic realm="pushprox"']);
      if (status === 401) headers.push(["www-authenticate", 'Basic realm="pushprox"']);
      if (status === 429) {
        headers.push([
          "retry-after",
          String(Math.max(1, Math.ceil((result.retryAfterMs ?? 0) / 1000))),
        ]);
      }
      const text = `Cannot serve ${role === "scraper" ? "scrape" : path}: ${
        publicReason(role, auth.config[role], result)
      }\n`;
      return { status, headers, text };
    },
    interceptor: (next) => (request) => {
      const role = request.service.typeName === ClientService.typeName ? "client" : "reader";
      const error = connectError(role, request.contextValues.get(REQUEST)?.result ?? null);
      if (error !== null) throw error;
      return next(request);
    },
  };
}

/**
 * A request's credentials as the authenticator reads them, each when read:
 * an open role reads none (the headers' lookups and the source key per
 * request were ~1 % of the proxy's CPU per scrape; issue #11).
 */
class CredentialsRequest implements AuthRequest {
  readonly #credentials: Credentials;

  constructor(credentials: Credentials) {
    this.#credentials = credentials;
  }

  get authorization(): string | undefined {
    return this.#credentials.header("authorization");
  }

  get proxyAuthorization(): string | undefined {
    return this.#credentials.header("proxy-authorization");
  }

  get peer(): PeerIdentity | null {
    return this.#credentials.peer;
  }

  get source(): string {
    return sourceKey(this.#credentials.remoteAddress);
  }
}

/**
 * A request's context: methods, not closures per request (an open Poll
 * stream keeps its context for its life; issue #11).
 */
class Context implements RequestContext {
  readonly role: Role | null;
  readonly credentials: Credentials;
  readonly peerAddress: string;
  result: AuthResult | null = null;
  readonly #bodyBound: (credentials: Credentials) => void;
  readonly #check: (role: Role, credentials: Credentials) => Promise<AuthResult>;
  readonly #refused: (
    role: Role,
    credentials: Credentials,
    result: AuthResult & { ok: false },
  ) => void;
  #pending: Promise<AuthResult> | null = null;
  /** Made when first read (an authentication or a registration reads it; a scrape seldom). */
  #source: string | null = null;

  constructor(
    role: Role | null,
    credentials: Credentials,
    peerAddress: string,
    bodyBound: (credentials: Credentials) => void,
    check: (role: Role, credentials: Credentials) => Promise<AuthResult>,
    refused: (role: Role, credentials: Credentials, result: AuthResult & { ok: false }) => void,
  ) {
    this.role = role;
    this.credentials = credentials;
    this.peerAddress = peerAddress;
    this.#bodyBound = bodyBound;
    this.#check = check;
    this.#refused = refused;
  }

  /** The caller's source key (see sourceKey). */
  get source(): string {
    return this.#source ??= sourceKey(this.credentials.remoteAddress);
  }

  authenticate(): Promise<AuthResult> {
    const role = this.role;
    if (role === null) return Promise.reject(new Error("an open route has no role"));
    this.#pending ??= this.#check(role, this.credentials).then((result) => {
      this.result = result;
      if (!result.ok) this.#refused(role, this.credentials, result);
      return result;
    });
    return this.#pending;
  }

  bodyBound(): void {
    this.#bodyBound(this.credentials);
  }

  recheck(): Promise<AuthResult> {
    if (this.role === null) return Promise.reject(new Error("an open route has no role"));
    return this.#check(this.role, this.credentials);
  }
}

/** The legacy protocol's answer to an authorization: a grant, a refusal, or a status. */
export type LegacyGrant =
  | false
  | { credential: string }
  | { status: number; message: string; retryAfterMs?: number };

/**
 * What the client protocols ask of a request's authentication (Connect
 * ClientService, its fast path and legacy `/poll` `/push`), in one place.
 */
export interface ClientAuthorizer {
  /** The principal of an authenticated context, or null. */
  principal(context: RequestContext | null): Principal | null;
  /** May the context's principal register `fqdn`? Throws the Connect error if not. */
  authorizeRegistration(
    context: RequestContext | null,
    fqdn: string,
  ): { credential: string; name: string };
  /** Why a registration no longer holds (revoked, expired, re-scoped), or null. */
  revalidate(context: RequestContext | null, fqdn: string): Promise<string | null>;
  /** A legacy client's authorization for `fqdn`. */
  authorizeLegacy(context: RequestContext, fqdn: string): Promise<LegacyGrant>;
}

/** A recheck with nothing to check: one settled answer for every beat. */
const NO_PROBLEM: Promise<string | null> = Promise.resolve(null);

/**
 * Creates the client authorizer.
 *
 * @param requestAuth Counts and logs refusals.
 * @param options Metrics and logger.
 * @returns The authorizer.
 */
export function createClientAuthorizer(
  requestAuth: RequestAuth,
  options: { metrics: ProxyMetrics; logger: Logger },
): ClientAuthorizer {
  const principal = (context: RequestContext | null) =>
    context?.result?.ok ? context.result.principal : null;
  return {
    principal,
    authorizeRegistration(context, fqdn) {
      const who = principal(context);
      if (who === null) {
        throw new ConnectError("Cannot register: not authenticated", Code.Unauthenticated);
      }
      const problem = registrationProblem(who, fqdn);
      if (problem !== null) {
        options.metrics.authFailures.inc({ role: "client", reason: "forbidden" });
        options.logger.warn("Registration refused", { fqdn, credential: who.name, err: problem });
        throw new ConnectError(`Cannot register: ${problem}`, Code.PermissionDenied);
      }
      return { credential: who.credential, name: who.name };
    },
    revalidate(context, fqdn) {
      // Not async: each heartbeat of each stream calls it (issue #11).
      const before = principal(context);
      if (context === null || before === null) return NO_PROBLEM;
      return context.recheck().then((result) => {
        if (!result.ok) return result.reason;
        if (result.principal.credential !== before.credential) return "the credential changed";
        return registrationProblem(result.principal, fqdn);
      });
    },
    async authorizeLegacy(context, fqdn) {
      const result = await context.authenticate();
      if (!result.ok) {
        if (result.kind === "throttled" || result.kind === "busy") {
          return {
            status: result.kind === "busy" ? 503 : 429,
            message: result.reason,
            ...(result.retryAfterMs === undefined ? {} : { retryAfterMs: result.retryAfterMs }),
          };
        }
        return false;
      }
      const problem = registrationProblem(result.principal, fqdn);
      if (problem !== null) {
        requestAuth.refused("client", context.credentials, {
          ok: false,
          kind: "forbidden",
          reason: problem,
        });
        return false;
      }
      return { credential: result.principal.credential };
    },
  };
}
