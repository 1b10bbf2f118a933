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
 * them each role accepts. Parsing is pure; checking passwords is the only
 * asynchronous step.
 *
 * @module
 */

import { hostKey } from "../lib/host.ts";
import {
  type BasicAuthVerifier,
  createBasicAuthVerifier,
  parseBasicAuth,
  parseBearer,
  sha256Hex,
} from "../lib/basic_auth.ts";
import { canonicalIp, type PeerIdentity } from "../lib/tls_server.ts";
import { createTokenBuckets, type TokenBuckets } from "./rate_limit.ts";
import {
  boolean,
  checkKeys,
  ConfigError,
  type Locator,
  mapping,
  optionalString,
  parseYamlMapping,
  stringList,
} from "../lib/web_config.ts";
import { errorMessage } from "../lib/error_message.ts";

/** The three kinds of callers. */
export type Role = "client" | "scraper" | "reader";

/** A bearer token, stored hashed. */
export interface TokenEntry {
  /** For logs; defaults to the first 8 hex digits of the hash. */
  name: string;
  /** SHA-256 of the token, lower-case hex. */
  sha256: string;
  /** fqdn patterns a client token may register (`*` one label part, `**` anything). */
  fqdns: string[];
  /** Unix ms after which the token is refused; null for never. */
  expires: number | null;
}

/** What one role accepts. */
export interface RolePolicy {
  /** Anyone may act in this role. */
  open: boolean;
  /** Basic-auth user names from the web config; "all" for every user. */
  users: ReadonlySet<string> | "all";
  /**
   * Client certificates: for clients, true means "CN or SAN equals the fqdn";
   * for the other roles a list of CN/SAN patterns ("*" any verified certificate).
   */
  certificates: boolean | string[];
  tokens: TokenEntry[];
}

/** The parsed `--auth.config.file`, or the default derived from the web config. */
export interface AuthConfig {
  client: RolePolicy;
  scraper: RolePolicy;
  reader: RolePolicy;
  /** Where it came from, for logs: a path, "web config" or "none". */
  source: string;
}

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

/**
 * The configuration without `--auth.config.file`: open roles, or, when the
 * web config has `basic_auth_users`, exporter-toolkit's meaning of them —
 * every request needs one of the users (scrapers in `Proxy-Authorization`),
 * and clients authenticated that way may register any fqdn.
 *
 * @param users The web config's `basic_auth_users`.
 * @returns The configuration.
 */
export function defaultAuthConfig(users: ReadonlyMap<string, string>): AuthConfig {
  const role = (): RolePolicy =>
    users.size === 0
      ? { open: true, users: new Set(), certificates: false, tokens: [] }
      : { open: false, users: "all", certificates: false, tokens: [] };
  return {
    client: role(),
    scraper: role(),
    reader: role(),
    source: users.size === 0 ? "none" : "web config basic_auth_users",
  };
}

/**
 * Reads `--auth.config.file`.
 *
 * @param path The file.
 * @param users The web config's users, which the file may name.
 * @returns The configuration.
 * @throws {ConfigError} Naming file, key and line.
 */
export async function loadAuthConfig(
  path: string,
  users: ReadonlyMap<string, string>,
): Promise<AuthConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new ConfigError(`Cannot read auth config ${path}: ${errorMessage(error)}`);
  }
  return parseAuthConfig(text, path, users);
}

/**
 * Parses an auth configuration.
 *
 * @param text The YAML.
 * @param path The file name, for messages.
 * @param users The web config's users.
 * @returns The configuration.
 * @throws {ConfigError} On unknown keys, wrong types, unknown users, bad hashes.
 */
export function parseAuthConfig(
  text: string,
  path: string,
  users: ReadonlyMap<string, string>,
): AuthConfig {
  const { value, at } = parseYamlMapping(text, path, "auth config");
  checkKeys(value, ["clients", "scrapers", "readers"], "", at);
  const roles: Record<string, RolePolicy> = {};
  for (
    const [key, allowed] of [
      ["clients", ["open", "tokens", "certificates"]],
      ["scrapers", ["open", "basic_auth_users", "certificates"]],
      ["readers", ["open", "basic_auth_users", "certificates", "tokens"]],
    ] as const
  ) {
    const raw = value[key];
    if (raw === undefined || raw === null) {
      throw new ConfigError(
        `${
          at([])
        }: "${key}" is missing; give each role (clients, scrapers, readers) credentials or "open: true"`,
      );
    }
    const section = mapping(raw, key, at);
    checkKeys(section, allowed, `${key}.`, at);
    const open = section["open"] === undefined
      ? false
      : boolean(section["open"], `${key}.open`, at);
    const userNames = stringList(section["basic_auth_users"], `${key}.basic_auth_users`, at);
    for (const name of userNames) {
      if (!users.has(name)) {
        throw new ConfigError(
          `${
            at([key, "basic_auth_users"])
          }: user "${name}" is not in the web config's basic_auth_users`,
        );
      }
    }
    let certificates: boolean | string[] = false;
    if (key === "clients") {
      if (section["certificates"] !== undefined) {
        certificates = boolean(section["certificates"], `${key}.certificates`, at);
      }
    } else {
      certificates = stringList(section["certificates"], `${key}.certificates`, at);
    }
    const tokens = parseTokens(section["tokens"], key, key === "clients", at);
    const policy: RolePolicy = { open, users: new Set(userNames), certificates, tokens };
    const hasCredentials = userNames.length > 0 || tokens.length > 0 ||
      (certificates === true || (Array.isArray(certificates) && certificates.length > 0));
    if (open && hasCredentials) {
      throw new ConfigError(`${at([key, "open"])}: an open role takes no credentials`);
    }
    if (!open && !hasCredentials) {
      throw new ConfigError(
        `${
          at([key])
        }: no credentials are accepted, so nobody could act as ${key}; add some or set "open: true"`,
      );
    }
    roles[key] = policy;
  }
  return {
    client: roles["clients"]!,
    scraper: roles["scrapers"]!,
    reader: roles["readers"]!,
    source: path,
  };
}

function parseTokens(raw: unknown, role: string, needsFqdns: boolean, at: Locator): TokenEntry[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new ConfigError(`${at([role, "tokens"])}: expected a list`);
  const seen = new Set<string>();
  return raw.map((item, index) => {
    const where = `${role}.tokens.${index}`;
    const entry = mapping(item, where, at);
    checkKeys(entry, ["name", "sha256", "fqdns", "expires"], `${where}.`, at);
    const hash = (optionalString(entry["sha256"], `${where}.sha256`, at) ?? "").toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(hash)) {
      throw new ConfigError(
        `${
          at([role, "tokens", String(index), "sha256"])
        }: expected the token's SHA-256 as 64 hex digits, without its newline (tr -d '\\n' < token-file | sha256sum)`,
      );
    }
    if (seen.has(hash)) {
      throw new ConfigError(
        `${at([role, "tokens", String(index)])}: the same token is listed twice`,
      );
    }
    seen.add(hash);
    const fqdns = stringList(entry["fqdns"], `${where}.fqdns`, at);
    if (needsFqdns && fqdns.length === 0) {
      throw new ConfigError(
        `${
          at([role, "tokens", String(index)])
        }: a client token needs fqdns (the names it may register)`,
      );
    }
    if (!needsFqdns && fqdns.length > 0) {
      throw new ConfigError(
        `${at([role, "tokens", String(index), "fqdns"])}: only client tokens have fqdns`,
      );
    }
    for (const pattern of fqdns) {
      if (!/^[a-zA-Z0-9_.:*?\-\[\]]+$/.test(pattern)) {
        throw new ConfigError(
          `${at([role, "tokens", String(index), "fqdns"])}: "${pattern}" is not an fqdn pattern`,
        );
      }
    }
    let expires: number | null = null;
    const rawExpires = entry["expires"];
    if (rawExpires !== undefined && rawExpires !== null) {
      const time = rawExpires instanceof Date
        ? rawExpires.getTime()
        : Date.parse(String(rawExpires));
      if (Number.isNaN(time)) {
        throw new ConfigError(
          `${
            at([role, "tokens", String(index), "expires"])
          }: expected a date such as 2027-01-31T00:00:00Z`,
        );
      }
      expires = time;
    }
    const name = optionalString(entry["name"], `${where}.name`, at) ?? hash.slice(0, 8);
    return { name, sha256: hash, fqdns, expires };
  });
}

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
    async authenticate(role, request) {
      const policy = current[role];
      if (policy.open) return { ok: true, principal: ANONYMOUS };
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
    },
  };
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
