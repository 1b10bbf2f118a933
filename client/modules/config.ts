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

export {
  type BackendTlsConfig,
  ConfigError,
  type ConfigErrorOptions,
  type ConfigSource,
  type ExecConfig,
  type ExecModuleConfig,
  type FileModuleConfig,
  type HttpBackendConfig,
  type HttpModuleConfig,
  type LoadedConfig,
  type ModuleConfig,
  type ParsedModule,
} from "./config/types.ts";
export { moduleNameProblem } from "./config/module_reader.ts";
export { parseConfig, parseModuleConfig } from "./config/parse.ts";
export {
  type ConfigDirEntry,
  type ConfigFs,
  loadConfig,
  loadConfigDirs,
  type LoadConfigDirsOptions,
  type LoadConfigOptions,
} from "./config/load.ts";
