/**
 * Reading YAML the way exporter_exporter's Go YAML does, with every problem
 * a {@linkcode ConfigError} naming the file, line and key path: the
 * {@linkcode Reader} over one document and the helpers the module readers
 * share.
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
import { parseGoDuration } from "../../../lib/duration.ts";
import { ConfigError, formatPosition } from "./types.ts";

const SIMPLE_KEY_REGEXP = /^[A-Za-z0-9_-]+$/;

/**
 * The key path of a child: `a.b` for simple keys, `a["x y"]` otherwise.
 *
 * @param path The parent's path ("" at the top).
 * @param key The child's key.
 * @returns The child's path.
 */
export function childPath(path: string, key: string): string {
  if (SIMPLE_KEY_REGEXP.test(key)) return path === "" ? key : `${path}.${key}`;
  return `${path}[${JSON.stringify(key)}]`;
}

/** A YAML node, or nothing. */
export type Value = YamlNode | null | undefined;

/** One key of a mapping. */
export interface Entry {
  readonly key: string;
  /** The key node, for line numbers. */
  readonly keyNode: YamlNode;
  readonly value: Value;
  readonly path: string;
}

// Matching control characters is the point here.
// deno-lint-ignore no-control-regex
export const CONTROL_REGEXP: RegExp = /[\u0000-\u001f\u007f]/;

/** Go yaml.v2/v3 accept YAML 1.1 booleans in bool fields (plain scalars). */
const YAML11_BOOLEANS: ReadonlyMap<string, boolean> = new Map([
  ...["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"].map((
    s,
  ) => [s, true] as const),
  ...["n", "N", "no", "No", "NO", "off", "Off", "OFF"].map((
    s,
  ) => [s, false] as const),
]);

/** Reads one YAML document's values, failing with the file, line and key path. */
export class Reader {
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

/**
 * The entries of a mapping by key; unknown keys fail (`unknownIsError`) or
 * are warned about and skipped, as exporter_exporter ignores them.
 *
 * @param r The reader.
 * @param entries The mapping's entries.
 * @param known The keys that mean something.
 * @param what The mapping's name for messages ("a module", "http").
 * @param unknownIsError Whether an unknown key is an error.
 * @returns The known entries by key.
 */
export function byKey(
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

/**
 * Parses YAML text into a {@linkcode Reader} and its root node; YAML errors
 * are a {@linkcode ConfigError}, YAML warnings go to `warnings`.
 *
 * @param text The file's text.
 * @param fileName The file name for messages.
 * @param warnings Where warnings are collected.
 * @returns The reader and the document's root.
 */
export function openDocument(
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
