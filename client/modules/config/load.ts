/**
 * Loading configuration from disk: `--config.file` and `--config.dirs`, the
 * way exporter_exporter's `setup()` does.
 *
 * @module
 */

import { errorMessage } from "../../../lib/error_message.ts";
import { moduleNameProblem } from "./module_reader.ts";
import { parseConfig, parseModuleConfig } from "./parse.ts";
import { ConfigError, type LoadedConfig, type ModuleConfig } from "./types.ts";

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
 * import { loadConfigDirs } from "../config.ts";
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
      throw new ConfigError(`cannot read directory: ${errorMessage(error)}`, {
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
        throw new ConfigError(`cannot read file: ${errorMessage(error)}`, {
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
      throw new ConfigError(`cannot read file: ${errorMessage(error)}`, {
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
