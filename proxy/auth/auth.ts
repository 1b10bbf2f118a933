/**
 * Who may do what on the proxy. Three roles, each configured on its own:
 *
 * - **client**: opens Poll streams and pushes answers. Proves itself with a
 *   bearer token (stored here as a SHA-256, with the fqdns it may register)
 *   or with a verified client certificate whose CN or a SAN equals the fqdn.
 * - **scraper**: Prometheus sending absolute-form requests. Proves itself with
 *   `Proxy-Authorization: Basic` (proxy_url with user:password) or a verified
 *   client certificate.
 * - **reader**: `/clients`, `/metrics` and `RegistryService`. Proves itself
 *   with `Authorization: Basic`, a bearer token or a client certificate.
 *
 * Basic-auth users and their bcrypt hashes live in the exporter-toolkit web
 * configuration (`basic_auth_users`); the auth configuration names which of
 * them each role accepts. This module checks requests against an
 * {@linkcode AuthConfig}; reading and checking the configuration itself is
 * proxy/auth/auth_config.ts (re-exported here). Checking passwords is the only
 * asynchronous step.
 *
 * @module
 */

import { hostKey } from "../../lib/host.ts";
import {
  type BasicAuthVerifier,
  createBasicAuthVerifier,
  parseBasicAuth,
  parseBearer,
  sha256Hex,
} from "../../lib/basic_auth.ts";
import { canonicalIp, type PeerIdentity } from "../../lib/tls_server.ts";
import { createTokenBuckets, type TokenBuckets } from "../core/rate_limit.ts";
import type { AuthConfig, Role, RolePolicy, TokenEntry } from "./auth_config.ts";

export {
  type AuthConfig,
  defaultAuthConfig,
  loadAuthConfig,
  parseAuthConfig,
  type Role,
  type RolePolicy,
  type TokenEntry,
} from "./auth_config.ts";

/** The credentials a request carries. */
export interface AuthRequest {
  /** The `Authorization` header. */
  authorization?: string | undefined;
  /** The `Proxy-Authorization` header. */
  proxyAuthorization?: string | undefined;
  /** The verified client certificate, if any. */
  peer: PeerIdentity | null;
  /** The caller's source key (see sourceKey), for per-source budgets. */
  source?: string;
}

/** Someone who authenticated. */
export interface Principal {
  /**
   * Names the credential: two requests with the same value used the same
   * credential. "anonymous" in open roles.
   */
  credential: string;
  /** For logs: user, token or certificate name. */
  name: string;
  /** fqdn patterns it may register; null for any. */
  fqdnPatterns: string[] | null;
  /** Exact names it may register (from its certificate); null when patterns apply. */
  fqdnNames: string[] | null;
}

/** Why authentication failed. */
export type AuthFailureKind =
  | "missing"
  | "invalid"
  | "expired"
  | "forbidden"
  | "busy"
  | "throttled";

/** The outcome of {@linkcode Authenticator.authenticate}. */
export type AuthResult =
  | { ok: true; principal: Principal }
  | {
    ok: false;
    kind: AuthFailureKind;
    /** Why, for logs; see {@linkcode publicReason} for what the caller is told. */
    reason: string;
    /** For "throttled": when the source may try again. */
    retryAfterMs?: number;
  };

/**
 * What a refused caller is told. Scrapers and readers get one answer for
 * every wrong, missing, unknown or out-of-role credential, so that answers
 * do not tell which user names exist or which role they have; clients get
 * the reason (their credentials name the fqdns they may register).
 *
 * @param role The role asked for.
 * @param policy What the role accepts.
 * @param result The failure.
 * @returns The message.
 */
export function publicReason(
  role: Role,
  policy: RolePolicy,
  result: AuthResult & { ok: false },
): string {
  if (result.kind === "busy" || result.kind === "throttled" || role === "client") {
    return result.reason;
  }
  return `${role} credentials required (${describePolicy(role, policy)})`;
}

/** Checks requests against the current configuration. */
export interface Authenticator {
  /** The configuration in force. */
  readonly config: AuthConfig;
  /** Whether any role is open (for the start-up warning). */
  openRoles(): Role[];
  /** Authenticates a request for a role. */
  authenticate(role: Role, request: AuthRequest): Promise<AuthResult>;
  /** Replaces the configuration and the users (on reload). */
  update(config: AuthConfig, users: ReadonlyMap<string, string>): void;
}

const ANONYMOUS: Principal = {
  credential: "anonymous",
  name: "anonymous",
  fqdnPatterns: null,
  fqdnNames: null,
};
/** What every request for an open role gets (shared, so never written to). */
const OPEN: Promise<AuthResult> = Promise.resolve({ ok: true, principal: ANONYMOUS });

/**
 * Turns an fqdn pattern into a matcher: `*` matches within one dot-separated
 * part, `**` across parts, `?` one character; case does not matter.
 *
 * @param pattern The pattern.
 * @returns A regular expression matching host keys.
 */
export function fqdnPatternRegExp(pattern: string): RegExp {
  let source = "";
  const key = hostKey(pattern);
  for (let i = 0; i < key.length; i++) {
    const char = key[i]!;
    if (char === "*" && key[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (char === "*") source += "[^.]*";
    else if (char === "?") source += "[^.]";
    else source += char.replace(/[.\\+^$(){}|[\]]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

/**
 * Says why `principal` may not register `fqdn`, or null when it may.
 *
 * @param principal The authenticated client.
 * @param fqdn The name it announces.
 * @returns A reason, or null.
 */
export function registrationProblem(principal: Principal, fqdn: string): string | null {
  const key = canonicalIp(hostKey(fqdn));
  if (principal.fqdnNames !== null) {
    if (principal.fqdnNames.some((name) => canonicalIp(hostKey(name)) === key)) return null;
    return `the client certificate is for ${
      principal.fqdnNames.join(", ") || "no name"
    }, not for "${fqdn}"`;
  }
  if (principal.fqdnPatterns !== null) {
    if (principal.fqdnPatterns.some((p) => fqdnPatternRegExp(p).test(key))) return null;
    return `credential ${principal.name} may not register "${fqdn}"`;
  }
  return null;
}

function certificateMatches(peer: PeerIdentity, patterns: readonly string[]): boolean {
  const names = [peer.commonName.toLowerCase(), ...peer.dnsNames, ...peer.ipAddresses]
    .filter((n) => n !== "");
  return patterns.some((pattern) =>
    pattern === "*" || names.some((name) => fqdnPatternRegExp(pattern).test(name))
  );
}

/** Options for {@linkcode createAuthenticator}. */
export interface AuthenticatorOptions {
  /** The web config's `basic_auth_users`. */
  users: ReadonlyMap<string, string>;
  /** @default {Date.now} */
  now?: () => number;
  /** Checks passwords. @default {a new verifier} */
  verifier?: BasicAuthVerifier;
  /**
   * Failed password checks one source may cause per `failureWindowMs`
   * (a token bucket: the budget refills evenly); beyond it, requests from
   * that source are refused ("throttled") without a check, except those
   * with cached credentials. 0: no limit. @default {0}
   */
  maxFailuresPerSource?: number;
  /** @default {60000} */
  failureWindowMs?: number;
}

/**
 * Creates an authenticator.
 *
 * @param config The role configuration.
 * @param options Users, clock and password verifier.
 * @returns The authenticator.
 */
export function createAuthenticator(
  config: AuthConfig,
  options: AuthenticatorOptions,
): Authenticator {
  let current = config;
  let users = options.users;
  let tokenIndex = indexTokens(config);
  const now = options.now ?? Date.now;
  const verifier = options.verifier ?? createBasicAuthVerifier();
  const maxFailures = options.maxFailuresPerSource ?? 0;
  const failures: TokenBuckets | null = maxFailures > 0
    ? createTokenBuckets({
      ratePerSecond: maxFailures / ((options.failureWindowMs ?? 60_000) / 1000),
      burst: maxFailures,
      now,
    })
    : null;

  function indexTokens(c: AuthConfig): Record<Role, Map<string, TokenEntry>> {
    const index = (list: TokenEntry[]) => new Map(list.map((t) => [t.sha256, t]));
    return {
      client: index(c.client.tokens),
      scraper: index(c.scraper.tokens),
      reader: index(c.reader.tokens),
    };
  }

  function byToken(role: Role, token: string): AuthResult {
    const entry = tokenIndex[role].get(sha256Hex(token.trim()));
    if (entry === undefined) return { ok: false, kind: "invalid", reason: "unknown token" };
    if (entry.expires !== null && now() >= entry.expires) {
      return {
        ok: false,
        kind: "expired",
        reason: `token ${entry.name} expired at ${new Date(entry.expires).toISOString()}`,
      };
    }
    return {
      ok: true,
      principal: {
        credential: `token:${entry.sha256.slice(0, 16)}`,
        name: `token ${entry.name}`,
        fqdnPatterns: role === "client" ? entry.fqdns : null,
        fqdnNames: null,
      },
    };
  }

  async function byUser(
    role: Role,
    policy: RolePolicy,
    header: string | undefined,
    source: string,
  ): Promise<AuthResult> {
    const credentials = parseBasicAuth(header);
    if (credentials === null) {
      return { ok: false, kind: "invalid", reason: "malformed basic credentials" };
    }
    const inRole = policy.users === "all" || policy.users.has(credentials.user);
    const budgeted = failures !== null && source !== "";
    if (budgeted && !verifier.isCached(users, credentials)) {
      // A source past its budget of failures gets no more password checks.
      const waitMs = failures.peek(source);
      if (waitMs > 0) {
        return {
          ok: false,
          kind: "throttled",
          reason: `too many failed password checks from ${source}; retry in ${
            Math.ceil(waitMs / 1000)
          }s`,
          retryAfterMs: waitMs,
        };
      }
    }
    // Checked even for users outside the role, so that a user's role cannot
    // be learnt from timing.
    const failure = await verifier.verify(users, credentials, { source });
    if (failure === "busy") {
      return { ok: false, kind: "busy", reason: "too many password checks at once" };
    }
    if (failure === "source_busy") {
      return {
        ok: false,
        kind: "throttled",
        reason: `too many password checks at once from ${source}`,
        retryAfterMs: 1000,
      };
    }
    if (failure !== null) {
      if (budgeted) failures.take(source);
      return {
        ok: false,
        kind: "invalid",
        reason: `wrong user or password for "${credentials.user}"`,
      };
    }
    if (!inRole) {
      return {
        ok: false,
        kind: "forbidden",
        reason: `user "${credentials.user}" may not act as ${role}`,
      };
    }
    return {
      ok: true,
      principal: {
        credential: `user:${credentials.user}`,
        name: `user ${credentials.user}`,
        fqdnPatterns: null,
        fqdnNames: null,
      },
    };
  }

  return {
    get config() {
      return current;
    },
    openRoles() {
      return (["client", "scraper", "reader"] as const).filter((r) => current[r].open);
    },
    update(config, newUsers) {
      current = config;
      users = newUsers;
      tokenIndex = indexTokens(config);
    },
    authenticate(role, request) {
      // An open role: one settled answer for every request (each heartbeat
      // rechecks its stream: no promise and result per stream; issue #11).
      return current[role].open ? OPEN : closed(role, request);
    },
  };

  async function closed(role: Role, request: AuthRequest): Promise<AuthResult> {
    const policy = current[role];
    const header = role === "scraper" ? request.proxyAuthorization : request.authorization;
    const acceptsUsers = policy.users === "all" || policy.users.size > 0;
    if (header) {
      const bearer = parseBearer(header);
      if (bearer !== null) {
        if (policy.tokens.length === 0) {
          return {
            ok: false,
            kind: "forbidden",
            reason: `bearer tokens are not accepted for ${role}`,
          };
        }
        return byToken(role, bearer);
      }
      const basic = parseBasicAuth(header);
      if (basic !== null && !acceptsUsers && role === "client" && policy.tokens.length > 0) {
        // Upstream clients can only send basic auth: the password is the token.
        return byToken(role, basic.password);
      }
      if (basic !== null && acceptsUsers) {
        return await byUser(role, policy, header, request.source ?? "");
      }
      return {
        ok: false,
        kind: basic === null ? "invalid" : "forbidden",
        reason: basic === null
          ? "unsupported authorization scheme"
          : `basic auth is not accepted for ${role}`,
      };
    }
    const peer = request.peer;
    if (peer !== null && policy.certificates !== false) {
      if (policy.certificates === true) {
        const names = [peer.commonName, ...peer.dnsNames, ...peer.ipAddresses].filter((n) =>
          n !== ""
        );
        return {
          ok: true,
          principal: {
            credential: `cert:${peer.issuer}/${peer.subject}`,
            name: `certificate ${peer.commonName || peer.subject}`,
            fqdnPatterns: null,
            fqdnNames: names,
          },
        };
      }
      if (certificateMatches(peer, policy.certificates)) {
        return {
          ok: true,
          principal: {
            credential: `cert:${peer.issuer}/${peer.subject}`,
            name: `certificate ${peer.commonName || peer.subject}`,
            fqdnPatterns: null,
            fqdnNames: null,
          },
        };
      }
      return {
        ok: false,
        kind: "forbidden",
        reason: `certificate ${peer.commonName || peer.subject} may not act as ${role}`,
      };
    }
    return {
      ok: false,
      kind: "missing",
      reason: `${role} credentials required (${describePolicy(role, policy)})`,
    };
  }
}

function describePolicy(role: Role, policy: RolePolicy): string {
  const header = role === "scraper" ? "Proxy-Authorization" : "Authorization";
  const kinds: string[] = [];
  if (policy.users === "all" || policy.users.size > 0) kinds.push(`${header}: Basic`);
  if (policy.tokens.length > 0) kinds.push(`${header}: Bearer`);
  if (
    policy.certificates === true ||
    (Array.isArray(policy.certificates) && policy.certificates.length > 0)
  ) {
    kinds.push("a client certificate");
  }
  return kinds.join(" or ");
}
