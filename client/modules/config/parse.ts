/**
 * Parsing configuration text: a main file (`modules`, `defaultModule`) or one
 * `--config.dirs` file (a module block).
 *
 * @module
 */

import { readModule } from "./module_reader.ts";
import type { LoadedConfig, ModuleConfig, ParsedModule } from "./types.ts";
import { byKey, openDocument } from "./yaml_reader.ts";

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
 * import { parseConfig } from "../config.ts";
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
