/**
 * The auth configuration (`--auth.config.file`): what each role (client,
 * scraper, reader) accepts, parsed and checked against the web config's
 * users. Pure apart from reading the file; proxy/auth/auth.ts applies it to
 * requests.
 *
 * @module
 */

import {
  boolean,
  checkKeys,
  ConfigError,
  type Locator,
  mapping,
  optionalString,
  parseYamlMapping,
  stringList,
} from "../../lib/web_config.ts";
import { errorMessage } from "../../lib/error_message.ts";

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
