/**
 * exporter_exporter-compatible module configuration (`expexp.yaml`,
 * `--config.dirs`, `--config.skip-dirs`).
 *
 * Every key exporter_exporter 0.4–0.5 accepts is accepted with the same
 * meaning and defaults. Unknown keys and wrong types are a
 * {@linkcode ConfigError} naming the file, line and key path, for example
 * `expexp.yaml:7: modules.node.http.port: expected an integer, got "abc"`.
 * Upstream traps that are kept for compatibility come back as warnings
 * (strings) instead of being logged here.
 *
 * Differences from upstream, all reported as errors or warnings:
 * - Module names containing `/`, `\`, `..` or control characters, and empty
 *   names, are rejected.
 * - A module-level `verify` (as in the upstream README's cadvisor example,
 *   which exporter_exporter itself rejects) is read as `http.verify`, with a
 *   warning.
 * - `http.tls_ca_cert_file` was loaded but never used by exporter_exporter
 *   (it only set `ClientCAs`, which a TLS client ignores). Here it is trusted
 *   as a backend CA, in addition to the system roots, exactly like
 *   `tls_root_ca_file`; a warning says so.
 * - A `host` header is honoured in any letter case (upstream only applied the
 *   lowercase spelling), with a warning for other spellings.
 * - Values that could never work upstream fail at load time instead of on
 *   every scrape: ports outside 1–65535, schemes other than http/https,
 *   invalid header names, an empty exec `command` or file `path`, negative
 *   or integer `timeout` values (use "5s"), and empty TLS file names.
 * - An http `path` without a leading `/` (upstream's own example has
 *   `path: probe`, which Go sends as an invalid request line) gets one, with a
 *   warning.
 *
 * @module
 */

import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node as YamlNode,
  parseDocument,
  type Scalar,
} from "yaml";
import { ConfigError, formatPosition } from "./config_error.ts";

// ---- public types -----------------------------------------------------------

export { ConfigError, type ConfigErrorOptions } from "./config_error.ts";

/** Where a module was defined. */
export interface ConfigSource {
  /** The file name as given to the loader. */
  readonly file: string;
  /** 1-based line of the module's key (or of the file's first line). */
  readonly line: number;
}

interface ModuleBase {
  /** The module name (`?module=` value). */
  readonly name: string;
  /**
   * The module `timeout` in milliseconds (may be fractional), or
   * `undefined` when not set or `0`: exporter_exporter then applies no
   * deadline beyond the client's.
   */
  readonly timeoutMs: number | undefined;
  /** Where the module was defined. */
  readonly source: ConfigSource;
}

/** TLS settings for an http module's backend connection. */
export interface BackendTlsConfig {
  /** `tls_insecure_skip_verify`: skip backend certificate verification. */
  readonly insecureSkipVerify: boolean;
  /**
   * `tls_cert_file` + `tls_key_file`: a client certificate for the backend;
   * `undefined` unless both are set (as upstream).
   */
  readonly clientCertificate:
    | { readonly certFile: string; readonly keyFile: string }
    | undefined;
  /** `tls_root_ca_file` as configured. */
  readonly rootCaFile: string | undefined;
  /** `tls_ca_cert_file` as configured (see {@linkcode trustedCaFiles}). */
  readonly caCertFile: string | undefined;
  /**
   * PEM files whose certificates are trusted for the backend in addition to
   * the system roots: `tls_root_ca_file` and `tls_ca_cert_file`.
   */
  readonly trustedCaFiles: readonly string[];
  /** `server_name`: the name to send as SNI and verify the certificate for. */
  readonly serverName: string | undefined;
}

/** The `http:` block of a module, with defaults applied. */
export interface HttpBackendConfig {
  /** `scheme`, lower-cased. @default {"http"} */
  readonly scheme: "http" | "https";
  /** `address`. @default {"localhost"} */
  readonly address: string;
  /** `port` (required, 1–65535). */
  readonly port: number;
  /** The path part of `path`, always starting with `/`. @default {"/metrics"} */
  readonly path: string;
  /**
   * Query parameters from `path` (e.g. netdata's `?format=prometheus`);
   * they are added to the incoming query parameters, as upstream.
   */
  readonly query: ReadonlyArray<readonly [string, string]>;
  /** `scheme://address:port/path?query`, for convenience. */
  readonly url: string;
  /**
   * `headers` to add to the backend request, in file order, without the
   * Host override.
   */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** A `host` entry of `headers`: overrides the Host header. */
  readonly host: string | undefined;
  /**
   * `basic_auth_username` + `basic_auth_password`; `undefined` unless both
   * are non-empty (as upstream).
   */
  readonly basicAuth:
    | { readonly username: string; readonly password: string }
    | undefined;
  /** `verify`: check that 200 responses are valid expositions. @default {true} */
  readonly verify: boolean;
  /** TLS settings, used when `scheme` is `https`. */
  readonly tls: BackendTlsConfig;
}

/** An `http` module: reverse-proxies a local exporter. */
export interface HttpModuleConfig extends ModuleBase {
  /** The module method. */
  readonly method: "http";
  /** The backend. */
  readonly http: HttpBackendConfig;
}

/** The `exec:` block of a module. */
export interface ExecConfig {
  /** `command` to run (required). */
  readonly command: string;
  /** `args`, before any `args=` query values. */
  readonly args: readonly string[];
  /**
   * `env`: `undefined` means the command inherits the environment; an object
   * means the command gets exactly these variables and nothing else (not
   * even PATH), as upstream.
   */
  readonly env: Readonly<Record<string, string>> | undefined;
}

/** An `exec` module: runs a command whose stdout is text exposition. */
export interface ExecModuleConfig extends ModuleBase {
  /** The module method. */
  readonly method: "exec";
  /** The command. */
  readonly exec: ExecConfig;
}

/** A `file` module: serves a text exposition file. */
export interface FileModuleConfig extends ModuleBase {
  /** The module method. */
  readonly method: "file";
  /** The `file:` block. */
  readonly file: { readonly path: string };
}

/** A module, by method. */
export type ModuleConfig =
  | HttpModuleConfig
  | ExecModuleConfig
  | FileModuleConfig;

/** The result of loading configuration. */
export interface LoadedConfig {
  /** Modules by name, in definition order. */
  readonly modules: ReadonlyMap<string, ModuleConfig>;
  /** `defaultModule`: used when a request names no module. */
  readonly defaultModule: string | undefined;
  /**
   * Problems that do not stop loading, each prefixed with
   * `file:line: key.path: `. The caller decides how to log them.
   */
  readonly warnings: readonly string[];
}

/** One module parsed from a `--config.dirs` file. */
export interface ParsedModule {
  /** The module. */
  readonly module: ModuleConfig;
  /** Warnings, as in {@linkcode LoadedConfig.warnings}. */
  readonly warnings: readonly string[];
}

// ---- YAML reading -----------------------------------------------------------

const SIMPLE_KEY_REGEXP = /^[A-Za-z0-9_-]+$/;

function childPath(path: string, key: string): string {
  if (SIMPLE_KEY_REGEXP.test(key)) return path === "" ? key : `${path}.${key}`;
  return `${path}[${JSON.stringify(key)}]`;
}

type Value = YamlNode | null | undefined;

interface Entry {
  readonly key: string;
  /** The key node, for line numbers. */
  readonly keyNode: YamlNode;
  readonly value: Value;
  readonly path: string;
}

/** Go yaml.v2/v3 accept YAML 1.1 booleans in bool fields (plain scalars). */
const YAML11_BOOLEANS: ReadonlyMap<string, boolean> = new Map([
  ...["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"].map((
    s,
  ) => [s, true] as const),
  ...["n", "N", "no", "No", "NO", "off", "Off", "OFF"].map((
    s,
  ) => [s, false] as const),
]);

class Reader {
  readonly file: string;
  readonly warnings: string[];
  readonly #doc: Document;
  readonly #lines: LineCounter;

  constructor(
    file: string,
    doc: Document,
    lines: LineCounter,
    warnings: string[],
  ) {
    this.file = file;
    this.#doc = doc;
    this.#lines = lines;
    this.warnings = warnings;
  }

  lineOf(node: Value): number {
    const offset = node?.range?.[0];
    return offset === undefined ? 1 : this.#lines.linePos(offset).line;
  }

  fail(node: Value, path: string, reason: string): never {
    throw new ConfigError(reason, {
      file: this.file,
      line: this.lineOf(node),
      keyPath: path,
    });
  }

  warn(node: Value, path: string, message: string): void {
    this.warnings.push(
      formatPosition(this.file, this.lineOf(node), path) + message,
    );
  }

  resolve(node: Value, path: string): Value {
    let current = node;
    for (let hops = 0; isAlias(current); hops++) {
      const target = current.resolve(this.#doc);
      if (target === undefined || hops > 100) {
        this.fail(current, path, `unresolved alias *${current.source}`);
      }
      current = target as YamlNode;
    }
    return current;
  }

  isNull(node: Value): boolean {
    return node === null || node === undefined ||
      (isScalar(node) && node.value === null);
  }

  describe(node: Value): string {
    if (this.isNull(node)) return "null";
    if (isMap(node)) return "a mapping";
    if (isSeq(node)) return "a list";
    if (isScalar(node)) {
      const value = node.value;
      if (typeof value === "string") return JSON.stringify(value);
      if (typeof value === "number" || typeof value === "boolean") {
        return node.source ?? String(value);
      }
      return "a binary value";
    }
    return "an unsupported value";
  }

  /** The entries of a mapping (null means empty), merge keys applied. */
  entries(node: Value, path: string, what = "a mapping"): Entry[] {
    const map = this.resolve(node, path);
    if (this.isNull(map)) return [];
    if (!isMap(map)) {
      this.fail(map, path, `expected ${what}, got ${this.describe(map)}`);
    }
    const explicit: Entry[] = [];
    const merged: Entry[] = [];
    for (const pair of map.items) {
      const keyNode = this.resolve(pair.key as Value, path);
      if (!isScalar(keyNode)) {
        this.fail(
          map,
          path,
          `expected string keys, got ${this.describe(keyNode)}`,
        );
      }
      if (
        typeof keyNode.value === "symbol" ||
        (keyNode.value === "<<" && keyNode.type === "PLAIN")
      ) {
        const source = this.resolve(pair.value as Value, path);
        const sources = isSeq(source) ? source.items as Value[] : [source];
        for (const item of sources) {
          for (const entry of this.entries(item, path, "a mapping to merge")) {
            merged.push(entry);
          }
        }
        continue;
      }
      const key = this.scalarText(keyNode);
      explicit.push({
        key,
        keyNode,
        value: pair.value as Value,
        path: childPath(path, key),
      });
    }
    // Explicit keys win over merged ones; earlier merge sources win.
    const seen = new Set(explicit.map((e) => e.key));
    const result = [...explicit];
    for (const entry of merged) {
      if (seen.has(entry.key)) continue;
      seen.add(entry.key);
      result.push({ ...entry, path: childPath(path, entry.key) });
    }
    return result;
  }

  scalarText(node: Scalar): string {
    const value = node.value;
    if (typeof value === "string") return value;
    if (value === null) return "";
    return node.source ?? String(value);
  }

  string(value: Value, path: string): string | undefined {
    const node = this.resolve(value, path);
    if (this.isNull(node)) return undefined;
    if (
      isScalar(node) &&
      (typeof node.value === "string" || typeof node.value === "number" ||
        typeof node.value === "boolean")
    ) {
      return this.scalarText(node);
    }
    this.fail(node, path, `expected a string, got ${this.describe(node)}`);
  }

  bool(value: Value, path: string): boolean | undefined {
    const node = this.resolve(value, path);
    if (this.isNull(node)) return undefined;
    if (isScalar(node)) {
      if (typeof node.value === "boolean") return node.value;
      if (node.type === "PLAIN" && typeof node.value === "string") {
        const legacy = YAML11_BOOLEANS.get(node.value);
        if (legacy !== undefined) return legacy;
      }
    }
    this.fail(
      node,
      path,
      `expected true or false, got ${this.describe(node)}`,
    );
  }

  int(value: Value, path: string): number | undefined {
    const node = this.resolve(value, path);
    if (this.isNull(node)) return undefined;
    if (
      isScalar(node) && typeof node.value === "number" &&
      Number.isSafeInteger(node.value)
    ) {
      return node.value;
    }
    this.fail(node, path, `expected an integer, got ${this.describe(node)}`);
  }

  /** A Go duration in milliseconds; `undefined` when unset. */
  duration(value: Value, path: string): number | undefined {
    const node = this.resolve(value, path);
    if (this.isNull(node)) return undefined;
    if (isScalar(node)) {
      if (node.value === 0) return 0;
      if (typeof node.value === "string") {
        const ms = parseGoDuration(node.value);
        if (ms !== undefined) return ms;
      }
    }
    this.fail(
      node,
      path,
      `expected a duration such as "5s" or "1m30s", got ${this.describe(node)}`,
    );
  }

  stringList(value: Value, path: string): string[] {
    const node = this.resolve(value, path);
    if (this.isNull(node)) return [];
    if (!isSeq(node)) {
      this.fail(node, path, `expected a list, got ${this.describe(node)}`);
    }
    return node.items.map((item, i) => this.string(item as Value, `${path}[${i}]`) ?? "");
  }

  stringMap(value: Value, path: string): [Entry, string][] {
    return this.entries(value, path).map((entry) => [
      entry,
      this.string(entry.value, entry.path) ?? "",
    ]);
  }
}

// ---- value helpers ----------------------------------------------------------

const DURATION_PART_REGEXP = /(\d*)(?:\.(\d*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;
const NS_PER_UNIT: Readonly<Record<string, number>> = {
  ns: 1,
  us: 1e3,
  "\u00b5s": 1e3,
  "\u03bcs": 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};
const MAX_DURATION_NS = 9223372036854775807;

/**
 * Parses a Go `time.ParseDuration` string ("300ms", "1.5h", "2h45m", "0")
 * into milliseconds. Negative values are returned as such.
 *
 * @param text The duration.
 * @returns Milliseconds, or `undefined` when the text is not a Go duration.
 */
export function parseGoDuration(text: string): number | undefined {
  let rest = text;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    if (rest[0] === "-") sign = -1;
    rest = rest.slice(1);
  }
  if (rest === "0") return 0;
  if (rest === "") return undefined;
  let ns = 0;
  let at = 0;
  while (at < rest.length) {
    DURATION_PART_REGEXP.lastIndex = at;
    const match = DURATION_PART_REGEXP.exec(rest);
    if (match === null) return undefined;
    const whole = match[1] ?? "";
    const fraction = match[2];
    if (whole === "" && (fraction === undefined || fraction === "")) {
      return undefined;
    }
    const number = Number(`${whole || "0"}.${fraction || "0"}`);
    ns += number * NS_PER_UNIT[match[3]!]!;
    at = DURATION_PART_REGEXP.lastIndex;
  }
  if (ns > MAX_DURATION_NS) return undefined;
  return (sign * ns) / 1e6;
}

const MODULE_METHODS = ["http", "exec", "file"] as const;
type Method = typeof MODULE_METHODS[number];

// Matching control characters is the point here.
// deno-lint-ignore no-control-regex
const CONTROL_REGEXP = /[\u0000-\u001f\u007f]/;

/**
 * Explains why a string cannot be a module name, if it cannot.
 *
 * @param name A candidate module name.
 * @returns A reason, or `undefined` when the name is acceptable.
 */
export function moduleNameProblem(name: string): string | undefined {
  if (name === "") return "module name must not be empty";
  if (CONTROL_REGEXP.test(name)) {
    return `module name ${JSON.stringify(name)} contains a control character`;
  }
  if (name.includes("/") || name.includes("\\")) {
    return `module name ${JSON.stringify(name)} contains a path separator`;
  }
  if (name === "." || name.includes("..")) {
    return `module name ${JSON.stringify(name)} contains a relative path`;
  }
  return undefined;
}

const HEADER_NAME_REGEXP = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE_BAD_REGEXP = /[\r\n\0]/;
const URL_SCHEME_REGEXP = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const BAD_ESCAPE_REGEXP = /%(?![0-9A-Fa-f]{2})/;

function hostPort(address: string, port: number): string {
  return address.includes(":") && !address.startsWith("[")
    ? `[${address}]:${port}`
    : `${address}:${port}`;
}

// ---- modules ----------------------------------------------------------------

const MODULE_KEYS = ["method", "timeout", "http", "exec", "file"];
const HTTP_KEYS = [
  "port",
  "address",
  "scheme",
  "path",
  "headers",
  "verify",
  "basic_auth_username",
  "basic_auth_password",
  "tls_insecure_skip_verify",
  "tls_cert_file",
  "tls_key_file",
  "tls_ca_cert_file",
  "tls_root_ca_file",
  "server_name",
];
const EXEC_KEYS = ["command", "args", "env"];
const FILE_KEYS = ["path"];

function byKey(
  r: Reader,
  entries: Entry[],
  known: readonly string[],
  what: string,
  unknownIsError: boolean,
): Map<string, Entry> {
  const map = new Map<string, Entry>();
  for (const entry of entries) {
    if (!known.includes(entry.key)) {
      const reason = `unknown key "${entry.key}" in ${what} (known keys: ${known.join(", ")})`;
      if (unknownIsError) r.fail(entry.keyNode, entry.path, reason);
      r.warn(
        entry.keyNode,
        entry.path,
        `${reason}; ignored, as exporter_exporter does`,
      );
      continue;
    }
    map.set(entry.key, entry);
  }
  return map;
}

function readModule(
  r: Reader,
  name: string,
  value: Value,
  path: string,
  keyNode: Value,
): ModuleConfig {
  const problem = moduleNameProblem(name);
  if (problem !== undefined) r.fail(keyNode, path, problem);
  const node = r.resolve(value, path);
  if (r.isNull(node)) {
    r.fail(keyNode ?? node, path, 'module has no configuration (expected "method")');
  }
  const all = r.entries(node, path);
  const verifyAlias = all.find((e) => e.key === "verify");
  const keys = byKey(
    r,
    all.filter((e) => e !== verifyAlias),
    MODULE_KEYS,
    "a module",
    true,
  );
  const methodEntry = keys.get("method");
  const method = methodEntry === undefined
    ? undefined
    : r.string(methodEntry.value, methodEntry.path);
  if (method === undefined || method === "") {
    r.fail(
      keyNode ?? node,
      childPath(path, "method"),
      "missing; expected http, exec or file",
    );
  }
  if (!(MODULE_METHODS as readonly string[]).includes(method)) {
    r.fail(
      methodEntry!.value,
      methodEntry!.path,
      `unknown module method ${JSON.stringify(method)}; expected http, exec or file`,
    );
  }
  const timeoutEntry = keys.get("timeout");
  let timeoutMs = timeoutEntry === undefined
    ? undefined
    : r.duration(timeoutEntry.value, timeoutEntry.path);
  if (timeoutMs !== undefined && timeoutMs < 0) {
    r.fail(
      timeoutEntry!.value,
      timeoutEntry!.path,
      `must not be negative, got ${r.describe(r.resolve(timeoutEntry!.value, timeoutEntry!.path))}`,
    );
  }
  if (timeoutMs === 0) timeoutMs = undefined;

  for (const block of MODULE_METHODS) {
    const entry = keys.get(block);
    if (entry !== undefined && block !== method && !r.isNull(r.resolve(entry.value, entry.path))) {
      r.warn(
        entry.keyNode,
        entry.path,
        `ignored because the module method is ${method}`,
      );
    }
  }
  const httpEntry = keys.get("http");
  const execEntry = keys.get("exec");
  const fileEntry = keys.get("file");
  const base = {
    name,
    timeoutMs,
    source: { file: r.file, line: r.lineOf(keyNode ?? node) },
  };

  let moduleVerify: boolean | undefined;
  if (verifyAlias !== undefined) {
    moduleVerify = r.bool(verifyAlias.value, verifyAlias.path);
    if (method !== "http") {
      r.warn(
        verifyAlias.keyNode,
        verifyAlias.path,
        `ignored: "verify" only applies to http modules (and belongs under "http:")`,
      );
    }
  }

  const http = readHttp(
    r,
    httpEntry,
    childPath(path, "http"),
    method === "http",
  );
  const exec = readExec(
    r,
    execEntry,
    childPath(path, "exec"),
    method === "exec",
  );
  const file = readFile(
    r,
    fileEntry,
    childPath(path, "file"),
    method === "file",
  );

  switch (method as Method) {
    case "http": {
      if (http === undefined) {
        r.fail(
          keyNode ?? node,
          childPath(path, "http"),
          "missing; an http module needs at least http.port",
        );
      }
      let backend = http;
      if (moduleVerify !== undefined && verifyAlias !== undefined) {
        if (http.verifySet && http.verify !== moduleVerify) {
          r.fail(
            verifyAlias.keyNode,
            verifyAlias.path,
            `conflicts with ${childPath(childPath(path, "http"), "verify")}`,
          );
        }
        r.warn(
          verifyAlias.keyNode,
          verifyAlias.path,
          `"verify" belongs under "http:" (exporter_exporter rejects it here as an unknown module field); read as http.verify: ${moduleVerify}`,
        );
        backend = { ...http, verify: moduleVerify };
      }
      const { verifySet: _, ...rest } = backend;
      return { ...base, method: "http", http: rest };
    }
    case "exec":
      if (exec === undefined) {
        r.fail(
          keyNode ?? node,
          childPath(path, "exec"),
          "missing; an exec module needs exec.command",
        );
      }
      return { ...base, method: "exec", exec };
    case "file":
      if (file === undefined) {
        r.fail(
          keyNode ?? node,
          childPath(path, "file"),
          "missing; a file module needs file.path",
        );
      }
      return { ...base, method: "file", file };
  }
}

function readHttp(
  r: Reader,
  entry: Entry | undefined,
  path: string,
  active: boolean,
): (HttpBackendConfig & { verifySet: boolean }) | undefined {
  if (entry === undefined) return undefined;
  const block = r.resolve(entry.value, path);
  const keys = byKey(r, r.entries(block, path), HTTP_KEYS, "http", active);
  const str = (key: string): string | undefined => {
    const e = keys.get(key);
    return e === undefined ? undefined : r.string(e.value, e.path);
  };
  const bool = (key: string): boolean | undefined => {
    const e = keys.get(key);
    return e === undefined ? undefined : r.bool(e.value, e.path);
  };
  const where = (key: string): [Value, string] => {
    const e = keys.get(key);
    return e === undefined ? [entry.keyNode, childPath(path, key)] : [e.value ?? e.keyNode, e.path];
  };

  const portEntry = keys.get("port");
  const port = (portEntry === undefined ? undefined : r.int(portEntry.value, portEntry.path)) ?? 0;
  const verifyValue = bool("verify");
  const insecureSkipVerify = bool("tls_insecure_skip_verify") ?? false;
  const fileKey = (key: string): string | undefined => {
    const value = str(key);
    if (value === "" && active) r.fail(...where(key), "must not be empty");
    return value === "" ? undefined : value;
  };
  const certFile = fileKey("tls_cert_file");
  const keyFile = fileKey("tls_key_file");
  const caCertFile = fileKey("tls_ca_cert_file");
  const rootCaFile = fileKey("tls_root_ca_file");
  const serverName = str("server_name") || undefined;
  const username = str("basic_auth_username") ?? "";
  const password = str("basic_auth_password") ?? "";
  const headerEntries = keys.has("headers")
    ? r.stringMap(keys.get("headers")!.value, keys.get("headers")!.path)
    : [];

  if (!active) {
    // Type-checked like upstream, otherwise unused.
    return undefined;
  }

  if (port === 0) r.fail(...where("port"), "must be a non-zero port");
  if (port < 1 || port > 65535) {
    r.fail(...where("port"), `must be between 1 and 65535, got ${port}`);
  }

  const schemeText = (str("scheme") || "http").toLowerCase();
  if (schemeText !== "http" && schemeText !== "https") {
    r.fail(
      ...where("scheme"),
      `expected http or https, got ${JSON.stringify(schemeText)}`,
    );
  }
  const scheme: "http" | "https" = schemeText;

  const address = str("address") || "localhost";
  if (/[\s/?#@]/.test(address) || CONTROL_REGEXP.test(address)) {
    r.fail(
      ...where("address"),
      `expected a host name or IP address, got ${JSON.stringify(address)}`,
    );
  }

  let rawPath = str("path") || "/metrics";
  if (CONTROL_REGEXP.test(rawPath)) {
    r.fail(...where("path"), "contains a control character");
  }
  if (URL_SCHEME_REGEXP.test(rawPath) || rawPath.startsWith("//")) {
    r.fail(
      ...where("path"),
      `expected a path such as /metrics, got the URL ${JSON.stringify(rawPath)}`,
    );
  }
  const hash = rawPath.indexOf("#");
  if (hash >= 0) {
    r.warn(...where("path"), "the #fragment is ignored, as upstream");
    rawPath = rawPath.slice(0, hash);
  }
  const question = rawPath.indexOf("?");
  let pathname = question >= 0 ? rawPath.slice(0, question) : rawPath;
  const queryText = question >= 0 ? rawPath.slice(question + 1) : "";
  if (BAD_ESCAPE_REGEXP.test(pathname)) {
    r.fail(...where("path"), `invalid %-escape in ${JSON.stringify(pathname)}`);
  }
  if (!pathname.startsWith("/")) {
    r.warn(
      ...where("path"),
      `${JSON.stringify(pathname)} does not start with "/"; using ${
        JSON.stringify("/" + pathname)
      } (exporter_exporter sent it as an invalid request line)`,
    );
    pathname = "/" + pathname;
  }
  const query = [...new URLSearchParams(queryText)].map(
    ([k, v]) => [k, v] as const,
  );

  const headers: (readonly [string, string])[] = [];
  let host: string | undefined;
  let hostEntry: Entry | undefined;
  for (const [header, value] of headerEntries) {
    if (!HEADER_NAME_REGEXP.test(header.key)) {
      r.fail(
        header.keyNode,
        header.path,
        `invalid header name ${JSON.stringify(header.key)}`,
      );
    }
    if (HEADER_VALUE_BAD_REGEXP.test(value)) {
      r.fail(
        header.value ?? header.keyNode,
        header.path,
        "header value contains CR, LF or NUL",
      );
    }
    if (header.key.toLowerCase() === "host") {
      if (hostEntry !== undefined) {
        r.fail(
          header.keyNode,
          header.path,
          `conflicts with ${hostEntry.path}: only one Host header can be set`,
        );
      }
      hostEntry = header;
      if (header.key !== "host") {
        r.warn(
          header.keyNode,
          header.path,
          `overrides the Host header here; exporter_exporter only did so for the lowercase spelling "host" and ignored ${
            JSON.stringify(header.key)
          }`,
        );
      }
      host = value === "" ? undefined : value;
      continue;
    }
    headers.push([header.key, value]);
  }

  let basicAuth: HttpBackendConfig["basicAuth"];
  if (username !== "" && password !== "") {
    basicAuth = { username, password };
  } else if (username !== "" || password !== "") {
    r.warn(
      ...where(username !== "" ? "basic_auth_username" : "basic_auth_password"),
      "ignored: basic auth is only sent when both basic_auth_username and basic_auth_password are set",
    );
  }

  let clientCertificate: BackendTlsConfig["clientCertificate"];
  if (certFile !== undefined && keyFile !== undefined) {
    clientCertificate = { certFile, keyFile };
  } else if (certFile !== undefined || keyFile !== undefined) {
    r.warn(
      ...where(certFile !== undefined ? "tls_cert_file" : "tls_key_file"),
      "ignored: a client certificate is only used when both tls_cert_file and tls_key_file are set",
    );
  }
  if (caCertFile !== undefined) {
    r.warn(
      ...where("tls_ca_cert_file"),
      "exporter_exporter loaded this file but never used it to verify the backend (it only set ClientCAs); here it is trusted as a backend CA in addition to the system roots, like tls_root_ca_file",
    );
  }
  const trustedCaFiles = [
    ...new Set(
      [rootCaFile, caCertFile].filter((f): f is string => f !== undefined),
    ),
  ];
  if (scheme === "http") {
    for (
      const key of [
        "tls_insecure_skip_verify",
        "tls_cert_file",
        "tls_key_file",
        "tls_ca_cert_file",
        "tls_root_ca_file",
        "server_name",
      ]
    ) {
      if (keys.has(key)) {
        r.warn(...where(key), "has no effect with scheme http");
      }
    }
  }

  const search = new URLSearchParams(query.map(([k, v]) => [k, v]))
    .toString();
  return {
    scheme,
    address,
    port,
    path: pathname,
    query,
    url: `${scheme}://${hostPort(address, port)}${pathname}${search === "" ? "" : `?${search}`}`,
    headers,
    host,
    basicAuth,
    verify: verifyValue ?? true,
    verifySet: verifyValue !== undefined,
    tls: {
      insecureSkipVerify,
      clientCertificate,
      rootCaFile,
      caCertFile,
      trustedCaFiles,
      serverName,
    },
  };
}

function readExec(
  r: Reader,
  entry: Entry | undefined,
  path: string,
  active: boolean,
): ExecConfig | undefined {
  if (entry === undefined) return undefined;
  const block = r.resolve(entry.value, path);
  const keys = byKey(r, r.entries(block, path), EXEC_KEYS, "exec", active);
  const commandEntry = keys.get("command");
  const command = commandEntry === undefined
    ? undefined
    : r.string(commandEntry.value, commandEntry.path);
  const argsEntry = keys.get("args");
  const args = argsEntry === undefined ? [] : r.stringList(argsEntry.value, argsEntry.path);
  const envEntry = keys.get("env");
  const envPairs = envEntry === undefined ? [] : r.stringMap(envEntry.value, envEntry.path);
  if (!active) return undefined;

  if (command === undefined || command === "") {
    r.fail(
      commandEntry?.value ?? entry.keyNode,
      childPath(path, "command"),
      "missing; an exec module needs a command",
    );
  }
  for (const [e, value] of envPairs) {
    if (e.key === "" || e.key.includes("=") || e.key.includes("\0")) {
      r.fail(
        e.keyNode,
        e.path,
        `invalid environment variable name ${JSON.stringify(e.key)}`,
      );
    }
    if (value.includes("\0")) {
      r.fail(e.value ?? e.keyNode, e.path, "value contains a NUL character");
    }
  }
  let env: Record<string, string> | undefined;
  if (envPairs.length > 0) {
    env = Object.fromEntries(envPairs.map(([e, v]) => [e.key, v]));
    if (!Object.hasOwn(env, "PATH")) {
      r.warn(
        envEntry!.keyNode,
        envEntry!.path,
        "a non-empty env replaces the whole environment of the command, so it does not inherit PATH, HOME or anything else (kept from exporter_exporter); add PATH to env if the command or its children need it",
      );
    }
  }
  return { command, args, env };
}

function readFile(
  r: Reader,
  entry: Entry | undefined,
  path: string,
  active: boolean,
): { path: string } | undefined {
  if (entry === undefined) return undefined;
  const block = r.resolve(entry.value, path);
  // exporter_exporter's file block has no catch-all, so unknown keys there
  // were silently ignored: warn rather than fail.
  const keys = byKey(r, r.entries(block, path), FILE_KEYS, "file", false);
  const pathEntry = keys.get("path");
  const filePath = pathEntry === undefined ? undefined : r.string(pathEntry.value, pathEntry.path);
  if (!active) return undefined;
  if (filePath === undefined || filePath === "") {
    r.fail(
      pathEntry?.value ?? entry.keyNode,
      childPath(path, "path"),
      "missing; a file module needs a path",
    );
  }
  return { path: filePath };
}

// ---- documents --------------------------------------------------------------

function openDocument(
  text: string,
  fileName: string,
  warnings: string[],
): [Reader, Value] {
  const lines = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter: lines,
    prettyErrors: false,
    merge: true,
    uniqueKeys: true,
  });
  const error = doc.errors[0];
  if (error !== undefined) {
    throw new ConfigError(`invalid YAML: ${error.message}`, {
      file: fileName,
      line: lines.linePos(error.pos[0]).line,
      cause: error,
    });
  }
  const reader = new Reader(fileName, doc, lines, warnings);
  for (const warning of doc.warnings) {
    warnings.push(
      formatPosition(fileName, lines.linePos(warning.pos[0]).line, undefined) +
        warning.message,
    );
  }
  return [reader, doc.contents as Value];
}

/**
 * Parses a main configuration file (`--config.file`, usually
 * `expexp.yaml`): top-level `modules`, `defaultModule` and (ignored)
 * `global`.
 *
 * @param text The file contents.
 * @param fileName The file name for messages.
 * @returns The modules, the default module and warnings.
 * @throws {ConfigError} When the file is invalid.
 *
 * @example Parsing the README example's first module
 * ```ts
 * import { parseConfig } from "./config.ts";
 *
 * const { modules } = parseConfig(
 *   "modules:\n  node:\n    method: http\n    http:\n       port: 9100\n",
 *   "expexp.yaml",
 * );
 * const node = modules.get("node");
 * console.assert(node?.method === "http" && node.http.url === "http://localhost:9100/metrics");
 * ```
 */
export function parseConfig(text: string, fileName: string): LoadedConfig {
  const warnings: string[] = [];
  const [r, root] = openDocument(text, fileName, warnings);
  const keys = byKey(
    r,
    r.entries(root, ""),
    ["modules", "defaultModule", "global"],
    "the top level",
    true,
  );
  const modules = new Map<string, ModuleConfig>();
  const modulesEntry = keys.get("modules");
  if (modulesEntry !== undefined) {
    for (const entry of r.entries(modulesEntry.value, "modules")) {
      modules.set(
        entry.key,
        readModule(r, entry.key, entry.value, entry.path, entry.keyNode),
      );
    }
  }
  const global = keys.get("global");
  if (global !== undefined && r.entries(global.value, global.path).length > 0) {
    r.warn(global.keyNode, global.path, "ignored (exporter_exporter has no global settings)");
  }
  const defaultEntry = keys.get("defaultModule");
  const defaultModule = defaultEntry === undefined
    ? undefined
    : r.string(defaultEntry.value, defaultEntry.path) || undefined;
  return { modules, defaultModule, warnings };
}

/**
 * Parses one `--config.dirs` file: the whole file is the module block
 * (`method`, `http`, …) of the module named after the file.
 *
 * @param text The file contents.
 * @param fileName The file name for messages.
 * @param moduleName The module name (the file name without extension).
 * @returns The module and warnings.
 * @throws {ConfigError} When the file or the name is invalid.
 */
export function parseModuleConfig(
  text: string,
  fileName: string,
  moduleName: string,
): ParsedModule {
  const warnings: string[] = [];
  const [r, root] = openDocument(text, fileName, warnings);
  const module = readModule(r, moduleName, root, "", undefined);
  return { module, warnings };
}

// ---- loading from disk ------------------------------------------------------

/** A directory entry as {@linkcode ConfigFs.readDir} yields it. */
export interface ConfigDirEntry {
  /** The entry's file name. */
  readonly name: string;
  /** True for directories (symlinks count as files, as in Go). */
  readonly isDirectory: boolean;
}

/** The file access the loaders need; `Deno` APIs by default. */
export interface ConfigFs {
  /**
   * Reads a whole text file.
   *
   * @param path The file path.
   * @returns The contents.
   */
  readTextFile(path: string): Promise<string>;
  /**
   * Lists a directory. Must throw `Deno.errors.NotFound` (or an error with
   * `code: "ENOENT"`) when it does not exist.
   *
   * @param path The directory path.
   * @returns Its entries, in any order.
   */
  readDir(path: string): AsyncIterable<ConfigDirEntry>;
}

const DENO_FS: ConfigFs = {
  readTextFile: (path) => Deno.readTextFile(path),
  readDir: (path) => Deno.readDir(path),
};

/** Options for {@linkcode loadConfigDirs}. */
export interface LoadConfigDirsOptions {
  /**
   * `--config.skip-dirs`: skip directories that do not exist (with a warning)
   * instead of failing.
   *
   * @default {false}
   */
  skipDirs?: boolean | undefined;
  /**
   * Modules loaded already (from `--config.file`); a directory module with
   * the same name is an error.
   *
   * @default {new Map()}
   */
  existing?: ReadonlyMap<string, ModuleConfig> | undefined;
  /** File access. @default Deno's file system */
  fs?: ConfigFs | undefined;
}

function isNotFound(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound ||
    (typeof error === "object" && error !== null &&
      (error as { code?: unknown }).code === "ENOENT");
}

function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? `${dir}${name}` : `${dir}/${name}`;
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Loads `--config.dirs` directories: each `*.yml`/`*.yaml` file (not
 * recursive, in name order) defines one module named after the file without
 * its extension; other files and subdirectories are skipped with a warning.
 *
 * @param dirs The directories, in flag order.
 * @param options `skipDirs`, already-loaded modules and file access.
 * @returns The directory modules (not including `existing`) and warnings.
 * @throws {ConfigError} For unreadable directories or files, invalid files
 *   and duplicate module names.
 *
 * @example Loading a directory
 * ```ts ignore
 * import { loadConfigDirs } from "./config.ts";
 *
 * const { modules, warnings } = await loadConfigDirs(["/etc/expexp.d"], {
 *   skipDirs: true,
 * });
 * ```
 */
export async function loadConfigDirs(
  dirs: readonly string[],
  options: LoadConfigDirsOptions = {},
): Promise<LoadedConfig> {
  const fs = options.fs ?? DENO_FS;
  const existing = options.existing ?? new Map<string, ModuleConfig>();
  const modules = new Map<string, ModuleConfig>();
  const warnings: string[] = [];
  for (const dir of dirs) {
    const entries: ConfigDirEntry[] = [];
    try {
      for await (const entry of fs.readDir(dir)) entries.push(entry);
    } catch (error) {
      if (options.skipDirs && isNotFound(error)) {
        warnings.push(
          `${dir}: skipping non-existent config.dirs entry (--config.skip-dirs)`,
        );
        continue;
      }
      throw new ConfigError(`cannot read directory: ${reasonOf(error)}`, {
        file: dir,
        cause: error,
      });
    }
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    for (const entry of entries) {
      const fullPath = joinPath(dir, entry.name);
      const dot = entry.name.lastIndexOf(".");
      const extension = dot >= 0 ? entry.name.slice(dot) : "";
      if (entry.isDirectory || (extension !== ".yml" && extension !== ".yaml")) {
        warnings.push(`${fullPath}: skipping non-yaml file`);
        continue;
      }
      const name = entry.name.slice(0, dot);
      const problem = moduleNameProblem(name);
      if (problem !== undefined) {
        throw new ConfigError(problem, { file: fullPath });
      }
      const previous = existing.get(name) ?? modules.get(name);
      if (previous !== undefined) {
        throw new ConfigError(
          `module ${
            JSON.stringify(name)
          } is already defined at ${previous.source.file}:${previous.source.line}`,
          { file: fullPath },
        );
      }
      let text: string;
      try {
        text = await fs.readTextFile(fullPath);
      } catch (error) {
        throw new ConfigError(`cannot read file: ${reasonOf(error)}`, {
          file: fullPath,
          cause: error,
        });
      }
      const parsed = parseModuleConfig(text, fullPath, name);
      modules.set(name, parsed.module);
      warnings.push(...parsed.warnings);
    }
  }
  return { modules, defaultModule: undefined, warnings };
}

/** Options for {@linkcode loadConfig}. */
export interface LoadConfigOptions {
  /**
   * `--config.file`. `undefined` or `""` loads no main file (only
   * `dirs`), as upstream with `-config.file=""`.
   */
  file?: string | undefined;
  /** `--config.dirs`. @default {[]} */
  dirs?: readonly string[] | undefined;
  /** `--config.skip-dirs`. @default {false} */
  skipDirs?: boolean | undefined;
  /** File access. @default Deno's file system */
  fs?: ConfigFs | undefined;
}

/**
 * Loads the main file and the directories the way exporter_exporter's
 * `setup()` does: file modules first, then directory modules; a name defined
 * twice is an error; no modules at all is a warning, not an error; an
 * unknown `defaultModule` is a warning.
 *
 * @param options Flags and file access.
 * @returns All modules, the default module and warnings.
 * @throws {ConfigError} When any file or directory is invalid.
 */
export async function loadConfig(
  options: LoadConfigOptions = {},
): Promise<LoadedConfig> {
  const fs = options.fs ?? DENO_FS;
  let main: LoadedConfig = {
    modules: new Map(),
    defaultModule: undefined,
    warnings: [],
  };
  if (options.file !== undefined && options.file !== "") {
    let text: string;
    try {
      text = await fs.readTextFile(options.file);
    } catch (error) {
      throw new ConfigError(`cannot read file: ${reasonOf(error)}`, {
        file: options.file,
        cause: error,
      });
    }
    main = parseConfig(text, options.file);
  }
  const fromDirs = await loadConfigDirs(options.dirs ?? [], {
    skipDirs: options.skipDirs,
    existing: main.modules,
    fs,
  });
  const modules = new Map([...main.modules, ...fromDirs.modules]);
  const warnings = [...main.warnings, ...fromDirs.warnings];
  if (modules.size === 0) warnings.push("no modules loaded from any config file");
  if (main.defaultModule !== undefined && !modules.has(main.defaultModule)) {
    warnings.push(
      `${options.file}: defaultModule: ${
        JSON.stringify(main.defaultModule)
      } is not a defined module; requests without ?module= will get 404`,
    );
  }
  return { modules, defaultModule: main.defaultModule, warnings };
}
