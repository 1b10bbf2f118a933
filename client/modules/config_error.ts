/**
 * The module configuration's error, apart from the YAML reader
 * (client/modules/config.ts) so that the command line can recognise it
 * without loading the parser.
 *
 * @module
 */

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
 * import { ConfigError, parseConfig } from "./config.ts";
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
 * The `file:line: key.path: ` prefix of a configuration error.
 *
 * @param file The file.
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
