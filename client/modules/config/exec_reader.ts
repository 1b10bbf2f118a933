/**
 * The `exec:` block of a module: command, args and env.
 *
 * @module
 */

import type { ExecConfig } from "./types.ts";
import { byKey, childPath, type Entry, type Reader } from "./yaml_reader.ts";

const EXEC_KEYS = ["command", "args", "env"];

/**
 * Reads a module's `exec:` block.
 *
 * @param r The reader.
 * @param entry The `exec` key, if present.
 * @param path Its key path.
 * @param active Whether the module's method is exec.
 * @returns The command; undefined when absent or inactive.
 */
export function readExec(
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
