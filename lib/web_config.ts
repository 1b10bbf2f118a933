/**
 * The Prometheus exporter-toolkit web configuration (`--web.config.file`):
 * TLS for a listener, client certificates, HTTP security headers and
 * bcrypt-hashed basic-auth users. The file format is exporter-toolkit's, so a
 * file written for node_exporter or Prometheus works here with the same
 * meaning; what this runtime cannot honour is refused with a reason instead
 * of being ignored.
 *
 * @module
 */

import { dirname, isAbsolute, join } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { errorMessage } from "./error_message.ts";
import { ConfigError } from "./web_config_error.ts";

export { ConfigError } from "./web_config_error.ts";

/** exporter-toolkit's `client_auth_type` values (Go's tls.ClientAuthType). */
export const CLIENT_AUTH_TYPES = [
  "NoClientCert",
  "RequestClientCert",
  "RequireAnyClientCert",
  "VerifyClientCertIfGiven",
  "RequireAndVerifyClientCert",
] as const;
/** How a listener treats client certificates. */
export type ClientAuthType = typeof CLIENT_AUTH_TYPES[number];

/** A TLS protocol version as node:tls names it. */
export type TlsVersion = "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";

/** `tls_server_config`, paths resolved against the config file's folder. */
export interface TlsServerConfig {
  /** `cert_file`: the server certificate (chain). */
  certFile: string;
  /** `key_file`: its private key. */
  keyFile: string;
  /** `client_auth_type`. */
  clientAuthType: ClientAuthType;
  /** CA bundle that client certificates must chain to; null when unset. */
  clientCaFile: string | null;
  /** When non-empty, a client certificate must carry one of these SANs. */
  clientAllowedSans: string[];
  /** `min_version`. */
  minVersion: TlsVersion;
  /** `max_version`. */
  maxVersion: TlsVersion;
}

/** The parsed file. */
export interface WebConfig {
  /** Null: plain HTTP. */
  tls: TlsServerConfig | null;
  /** Response headers from `http_server_config.headers`. */
  headers: Record<string, string>;
  /** `basic_auth_users`: user name → bcrypt hash. */
  basicAuthUsers: Map<string, string>;
}

const VERSIONS: Record<string, TlsVersion> = {
  TLS10: "TLSv1",
  TLS11: "TLSv1.1",
  TLS12: "TLSv1.2",
  TLS13: "TLSv1.3",
};

/**
 * The TLS 1.2 suites this runtime's TLS stack (rustls, under Deno's node:tls)
 * negotiates, by their Go names. node:tls' `ciphers` option is not honoured
 * by Deno, so a `cipher_suites` list can only be accepted when it allows all
 * of them (it restricts nothing) or when TLS 1.2 is off.
 */
export const RUNTIME_TLS12_SUITES: readonly string[] = [
  "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/** Go's suite names that exporter-toolkit accepts (for "unknown suite" errors). */
const GO_SUITES: ReadonlySet<string> = new Set([
  ...RUNTIME_TLS12_SUITES,
  "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
  "TLS_RSA_WITH_RC4_128_SHA",
  "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
  "TLS_RSA_WITH_AES_128_CBC_SHA",
  "TLS_RSA_WITH_AES_256_CBC_SHA",
  "TLS_RSA_WITH_AES_128_CBC_SHA256",
  "TLS_RSA_WITH_AES_128_GCM_SHA256",
  "TLS_RSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
  "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
  "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
  "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
  "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
  "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
]);

/** Headers exporter-toolkit allows in `http_server_config.headers`, lower case. */
const ALLOWED_HEADERS: ReadonlySet<string> = new Set([
  "strict-transport-security",
  "x-content-type-options",
  "x-frame-options",
  "x-xss-protection",
  "content-security-policy",
]);

/**
 * Reads and checks a web configuration file.
 *
 * @param path The file.
 * @returns The configuration; relative paths in it are resolved against its folder.
 * @throws {ConfigError} When it cannot be read or is invalid.
 */
export async function loadWebConfig(path: string): Promise<WebConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new ConfigError(`Cannot read web config ${path}: ${errorMessage(error)}`);
  }
  return parseWebConfig(text, path);
}

/**
 * Parses web configuration text.
 *
 * @param text The YAML.
 * @param path The file it came from: named in errors, base of relative paths.
 * @returns The configuration.
 * @throws {ConfigError} On YAML errors, unknown keys, wrong types or values.
 */
export function parseWebConfig(text: string, path: string): WebConfig {
  const root = parseYamlMapping(text, path, "web config");
  const at = root.at;
  checkKeys(root.value, ["tls_server_config", "http_server_config", "basic_auth_users"], "", at);

  let tls: TlsServerConfig | null = null;
  const tlsRaw = root.value["tls_server_config"];
  if (tlsRaw !== undefined && tlsRaw !== null) {
    const t = mapping(tlsRaw, "tls_server_config", at);
    checkKeys(
      t,
      [
        "cert_file",
        "key_file",
        "client_auth_type",
        "client_ca_file",
        "client_allowed_sans",
        "min_version",
        "max_version",
        "cipher_suites",
        "prefer_server_cipher_suites",
        "curve_preferences",
      ],
      "tls_server_config.",
      at,
    );
    const base = dirname(path);
    const file = (key: string): string | null => {
      const value = optionalString(t[key], `tls_server_config.${key}`, at);
      if (value === null || value === "") return null;
      return isAbsolute(value) ? value : join(base, value);
    };
    const certFile = file("cert_file");
    const keyFile = file("key_file");
    if (certFile === null || keyFile === null) {
      throw new ConfigError(
        `${at(["tls_server_config"])}: cert_file and key_file are both required for TLS`,
      );
    }
    const authText =
      optionalString(t["client_auth_type"], "tls_server_config.client_auth_type", at) ??
        "NoClientCert";
    if (!(CLIENT_AUTH_TYPES as readonly string[]).includes(authText)) {
      throw new ConfigError(
        `${at(["tls_server_config", "client_auth_type"])}: "${authText}" is not one of ${
          CLIENT_AUTH_TYPES.join(", ")
        }`,
      );
    }
    const clientAuthType = authText as ClientAuthType;
    const clientCaFile = file("client_ca_file");
    if (
      clientCaFile === null &&
      (clientAuthType === "VerifyClientCertIfGiven" ||
        clientAuthType === "RequireAndVerifyClientCert")
    ) {
      throw new ConfigError(
        `${at(["tls_server_config"])}: client_auth_type ${clientAuthType} needs client_ca_file`,
      );
    }
    if (clientCaFile !== null && clientAuthType === "NoClientCert") {
      throw new ConfigError(
        `${
          at(["tls_server_config", "client_ca_file"])
        }: client_ca_file is set but client_auth_type is NoClientCert; set client_auth_type to RequireAndVerifyClientCert or VerifyClientCertIfGiven`,
      );
    }
    const version = (key: string, fallback: string): TlsVersion => {
      const value = optionalString(t[key], `tls_server_config.${key}`, at) ?? fallback;
      const v = VERSIONS[value];
      if (v === undefined) {
        throw new ConfigError(
          `${at(["tls_server_config", key])}: "${value}" is not one of ${
            Object.keys(VERSIONS).join(", ")
          }`,
        );
      }
      return v;
    };
    // This runtime speaks TLS 1.2 and 1.3 only: a lower minimum changes nothing.
    let minVersion = version("min_version", "TLS12");
    const maxVersion = version("max_version", "TLS13");
    if (maxVersion === "TLSv1" || maxVersion === "TLSv1.1") {
      throw new ConfigError(
        `${at(["tls_server_config", "max_version"])}: TLS below 1.2 is not supported`,
      );
    }
    if (minVersion === "TLSv1" || minVersion === "TLSv1.1") minVersion = "TLSv1.2";
    if (minVersion === "TLSv1.3" && maxVersion === "TLSv1.2") {
      throw new ConfigError(
        `${at(["tls_server_config"])}: min_version is above max_version`,
      );
    }
    const suites = stringList(t["cipher_suites"], "tls_server_config.cipher_suites", at);
    for (const suite of suites) {
      if (!GO_SUITES.has(suite)) {
        throw new ConfigError(
          `${at(["tls_server_config", "cipher_suites"])}: unknown cipher suite "${suite}"`,
        );
      }
    }
    const normalized = new Set(
      suites.map((s) => s.endsWith("_CHACHA20_POLY1305") ? s + "_SHA256" : s),
    );
    const missing = RUNTIME_TLS12_SUITES.filter((s) => !normalized.has(s));
    if (suites.length > 0 && minVersion !== "TLSv1.3" && missing.length > 0) {
      throw new ConfigError(
        `${
          at(["tls_server_config", "cipher_suites"])
        }: cipher_suites cannot be enforced by this runtime (Deno's TLS stack negotiates its own fixed list of AEAD suites: ${
          RUNTIME_TLS12_SUITES.join(", ")
        }); remove cipher_suites, list all of these, or set min_version: TLS13`,
      );
    }
    if (t["prefer_server_cipher_suites"] !== undefined) {
      boolean(
        t["prefer_server_cipher_suites"],
        "tls_server_config.prefer_server_cipher_suites",
        at,
      );
    }
    const curves = stringList(t["curve_preferences"], "tls_server_config.curve_preferences", at);
    if (curves.length > 0) {
      throw new ConfigError(
        `${
          at(["tls_server_config", "curve_preferences"])
        }: curve_preferences cannot be enforced by this runtime; remove it (X25519, P-256 and P-384 are offered)`,
      );
    }
    const sans = stringList(t["client_allowed_sans"], "tls_server_config.client_allowed_sans", at);
    if (sans.length > 0 && clientCaFile === null) {
      throw new ConfigError(
        `${
          at(["tls_server_config", "client_allowed_sans"])
        }: client_allowed_sans needs client_ca_file`,
      );
    }
    tls = {
      certFile,
      keyFile,
      clientAuthType,
      clientCaFile,
      clientAllowedSans: sans,
      minVersion,
      maxVersion,
    };
  }

  const headers: Record<string, string> = {};
  const httpRaw = root.value["http_server_config"];
  if (httpRaw !== undefined && httpRaw !== null) {
    const h = mapping(httpRaw, "http_server_config", at);
    checkKeys(h, ["http2", "headers"], "http_server_config.", at);
    // Served over HTTP/1.1; http2 is accepted for compatibility and has no effect.
    if (h["http2"] !== undefined) boolean(h["http2"], "http_server_config.http2", at);
    const raw = h["headers"];
    if (raw !== undefined && raw !== null) {
      const map = mapping(raw, "http_server_config.headers", at);
      for (const [name, value] of Object.entries(map)) {
        const where = at(["http_server_config", "headers", name]);
        if (!ALLOWED_HEADERS.has(name.toLowerCase())) {
          throw new ConfigError(
            `${where}: header ${name} cannot be set; allowed are Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection and Content-Security-Policy`,
          );
        }
        if (typeof value !== "string" || /[\r\n]/.test(value)) {
          throw new ConfigError(`${where}: expected a one-line string`);
        }
        const lower = name.toLowerCase();
        if (lower === "x-content-type-options" && value.toLowerCase() !== "nosniff") {
          throw new ConfigError(`${where}: X-Content-Type-Options can only be nosniff`);
        }
        if (
          lower === "x-frame-options" && !["deny", "sameorigin"].includes(value.toLowerCase())
        ) {
          throw new ConfigError(`${where}: X-Frame-Options can only be deny or sameorigin`);
        }
        headers[lower] = value;
      }
    }
  }

  const basicAuthUsers = new Map<string, string>();
  const usersRaw = root.value["basic_auth_users"];
  if (usersRaw !== undefined && usersRaw !== null) {
    const users = mapping(usersRaw, "basic_auth_users", at);
    for (const [user, hash] of Object.entries(users)) {
      const where = at(["basic_auth_users", user]);
      if (typeof hash !== "string" || !/^\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}$/.test(hash)) {
        throw new ConfigError(
          `${where}: the password of ${user} must be a bcrypt hash ($2y$10$…), e.g. from htpasswd -nBC 10 "" | tr -d ':'`,
        );
      }
      if (user.includes(":")) throw new ConfigError(`${where}: a user name cannot contain ":"`);
      basicAuthUsers.set(user, hash);
    }
  }
  return { tls, headers, basicAuthUsers };
}

/** Locates a key path in the file: "file.yml:12 (tls_server_config.cert_file)". */
export type Locator = (path: readonly string[]) => string;

/**
 * Parses YAML whose top level must be a mapping, with a locator for errors.
 *
 * @param text The YAML.
 * @param path The file name for messages.
 * @param what What the file is, for messages ("web config").
 * @returns The mapping and a locator.
 * @throws {ConfigError} On syntax errors or a non-mapping document.
 */
export function parseYamlMapping(
  text: string,
  path: string,
  what: string,
): { value: Record<string, unknown>; at: Locator } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    const error = doc.errors[0]!;
    const line = lineCounter.linePos(error.pos[0]).line;
    throw new ConfigError(`Cannot parse ${what} ${path}:${line}: ${error.message.split("\n")[0]}`);
  }
  const at: Locator = (keys) => {
    let line = 1;
    for (let n = keys.length; n > 0; n--) {
      const node = doc.getIn(keys.slice(0, n), true) as { range?: [number, number, number] } | null;
      if (node && typeof node === "object" && node.range) {
        line = lineCounter.linePos(node.range[0]).line;
        break;
      }
      // A key whose value is null has no node; find the key itself.
      const parent = doc.getIn(keys.slice(0, n - 1), true) as
        | { items?: { key?: { value?: unknown; range?: [number, number, number] } }[] }
        | null;
      const key = parent?.items?.find((item) => item.key?.value === keys[n - 1])?.key;
      if (key?.range) {
        line = lineCounter.linePos(key.range[0]).line;
        break;
      }
    }
    return `${what} ${path}:${line}${keys.length > 0 ? ` (${keys.join(".")})` : ""}`;
  };
  const value = doc.toJS() as unknown;
  if (value === null || value === undefined) return { value: {}, at };
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(`${at([])}: expected a mapping at the top level`);
  }
  return { value: value as Record<string, unknown>, at };
}

function split(dotted: string): string[] {
  return dotted === "" ? [] : dotted.split(".");
}

/**
 * Refuses keys not in `known`.
 *
 * @param value A mapping.
 * @param known Allowed keys.
 * @param prefix Dotted path of the mapping plus ".", for messages.
 * @param at The locator.
 * @throws {ConfigError} Naming the first unknown key.
 */
export function checkKeys(
  value: Record<string, unknown>,
  known: readonly string[],
  prefix: string,
  at: Locator,
): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new ConfigError(
        `${at([...split(prefix.replace(/\.$/, "")), key])}: unknown key "${key}"${
          prefix ? ` in ${prefix.replace(/\.$/, "")}` : ""
        }; known keys are ${known.join(", ")}`,
      );
    }
  }
}

/**
 * Checks that a value is a mapping.
 *
 * @param value The value.
 * @param dotted Its key path, for messages.
 * @param at The locator.
 * @returns The mapping.
 * @throws {ConfigError} When it is not one.
 */
export function mapping(value: unknown, dotted: string, at: Locator): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(`${at(split(dotted))}: expected a mapping`);
  }
  return value as Record<string, unknown>;
}

/**
 * Checks an optional string.
 *
 * @param value The value.
 * @param dotted Its key path.
 * @param at The locator.
 * @returns The string, or null when absent.
 * @throws {ConfigError} When it is not a string.
 */
export function optionalString(value: unknown, dotted: string, at: Locator): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string") {
    throw new ConfigError(`${at(split(dotted))}: expected a string, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Checks an optional list of strings.
 *
 * @param value The value.
 * @param dotted Its key path.
 * @param at The locator.
 * @returns The list; empty when absent.
 * @throws {ConfigError} When it is not a list of strings.
 */
export function stringList(value: unknown, dotted: string, at: Locator): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new ConfigError(`${at(split(dotted))}: expected a list of strings`);
  }
  return value as string[];
}

/**
 * Checks a boolean.
 *
 * @param value The value.
 * @param dotted Its key path.
 * @param at The locator.
 * @returns The boolean.
 * @throws {ConfigError} When it is not one.
 */
export function boolean(value: unknown, dotted: string, at: Locator): boolean {
  if (typeof value !== "boolean") {
    throw new ConfigError(`${at(split(dotted))}: expected true or false`);
  }
  return value;
}
