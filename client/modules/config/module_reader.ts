/**
 * One module: its name, `method` and `timeout`, and the block of its method,
 * read by the reader for that method.
 *
 * @module
 */

import { readExec } from "./exec_reader.ts";
import { readFile } from "./file_reader.ts";
import { readHttp } from "./http_reader.ts";
import type { ModuleConfig } from "./types.ts";
import { byKey, childPath, CONTROL_REGEXP, type Reader, type Value } from "./yaml_reader.ts";

const MODULE_METHODS = ["http", "exec", "file"] as const;
type Method = typeof MODULE_METHODS[number];

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

const MODULE_KEYS = ["method", "timeout", "http", "exec", "file"];

/**
 * Reads one module.
 *
 * @param r The reader.
 * @param name The module's name.
 * @param value The module's block.
 * @param path Its key path.
 * @param keyNode The name's key node, for line numbers (none for a
 * `--config.dirs` file, which is the block).
 * @returns The module.
 */
export function readModule(
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
