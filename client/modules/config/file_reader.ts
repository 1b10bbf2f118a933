/**
 * The `file:` block of a module: the path of the exposition file.
 *
 * @module
 */

import { byKey, childPath, type Entry, type Reader } from "./yaml_reader.ts";

const FILE_KEYS = ["path"];

/**
 * Reads a module's `file:` block.
 *
 * @param r The reader.
 * @param entry The `file` key, if present.
 * @param path Its key path.
 * @param active Whether the module's method is file.
 * @returns The file's path; undefined when absent or inactive.
 */
export function readFile(
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
