/**
 * The module configuration's types, as the loaders return them, and
 * {@linkcode ConfigError}.
 *
 * @module
 */

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

/** Options for {@linkcode ConfigError}. */
export interface ConfigErrorOptions {
  /** The file being read. */
  file: string;
  /** 1-based line, when known. */
  line?: number | undefined;
  /** Dotted key path such as `modules.node.http.port`, when known. */
  keyPath?: string | undefined;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * Configuration that cannot be loaded. The message reads
 * `file:line: key.path: reason`.
 *
 * @example Reporting a bad port
 * ```ts
 * import { ConfigError, parseConfig } from "../config.ts";
 *
 * try {
 *   parseConfig("modules:\n  node:\n    method: http\n    http:\n      port: abc\n", "expexp.yaml");
 * } catch (error) {
 *   if (error instanceof ConfigError) {
 *     console.assert(
 *       error.message ===
 *         'expexp.yaml:5: modules.node.http.port: expected an integer, got "abc"',
 *     );
 *   }
 * }
 * ```
 */
export class ConfigError extends Error {
  /** The file being read. */
  readonly file: string;
  /** 1-based line, when known. */
  readonly line: number | undefined;
  /** Dotted key path, when known. */
  readonly keyPath: string | undefined;
  /** The reason without the position prefix. */
  readonly reason: string;

  /**
   * Creates a configuration error.
   *
   * @param reason What is wrong.
   * @param options Where it is wrong.
   */
  constructor(reason: string, options: ConfigErrorOptions) {
    super(
      formatPosition(options.file, options.line, options.keyPath) + reason,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = "ConfigError";
    this.file = options.file;
    this.line = options.line;
    this.keyPath = options.keyPath;
    this.reason = reason;
  }
}

/**
 * The `file:line: key.path: ` prefix of messages and warnings.
 *
 * @param file The file name.
 * @param line 1-based line, when known.
 * @param keyPath Dotted key path, when known.
 * @returns The prefix.
 */
export function formatPosition(
  file: string,
  line: number | undefined,
  keyPath: string | undefined,
): string {
  return `${file}${line === undefined ? "" : `:${line}`}: ${keyPath ? `${keyPath}: ` : ""}`;
}
