/**
 * The web configuration's error, apart from its YAML reader
 * (lib/web_config.ts) so that a program can recognise it without loading
 * the parser.
 *
 * @module
 */

/** A configuration file that cannot be used; the message names file, key and line. */
export class ConfigError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
