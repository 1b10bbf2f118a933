/**
 * Which HTTP header fields cross the proxy, shared by both directions.
 *
 * @module
 */

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1) plus fields that describe one
 * connection's framing; none of them may be forwarded. `proxy-authorization`
 * is meant for the proxy itself and is consumed there.
 */
const NOT_FORWARDED: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "content-length",
  "host",
]);

/** A header field as it travels in the protocol. */
export interface HeaderField {
  /** The field name, as sent. */
  name: string;
  /** The field value. */
  value: string;
}

/**
 * Keeps the fields that may be forwarded, lower-casing names. Fields named in
 * a `Connection` header are dropped too, as RFC 9110 requires.
 *
 * @param fields Name/value pairs in arrival order (duplicates allowed).
 * @returns The forwardable fields, in order.
 */
export function forwardableHeaders(
  fields: Iterable<readonly [string, string]>,
): HeaderField[] {
  const list: HeaderField[] = [];
  // Built only when a Connection field names others (rare): this runs up to
  // three times per scrape (issue #11).
  let named: Set<string> | null = null;
  // An array (nearly always) indexed: no iterator per call.
  const pairs: readonly (readonly [string, string])[] = Array.isArray(fields)
    ? fields
    : [...fields];
  for (let i = 0; i < pairs.length; i++) {
    const value = pairs[i]![1];
    const name = pairs[i]![0].toLowerCase();
    if (name === "connection") {
      named ??= new Set<string>();
      for (const token of value.split(",")) {
        named.add(token.trim().toLowerCase());
      }
    }
    if (!NOT_FORWARDED.has(name)) list.push({ name, value });
  }
  if (named === null) return list;
  const dropped = named;
  return list.filter((f) => !dropped.has(f.name));
}

/**
 * {@linkcode forwardableHeaders} of fields given as objects (a scrape
 * request's), without pairing them first.
 *
 * @param fields The fields in arrival order (duplicates allowed).
 * @returns The forwardable fields, in order, names lower-cased.
 */
export function forwardableFields(fields: readonly HeaderField[]): HeaderField[] {
  const list: HeaderField[] = [];
  let connection = false;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    const name = field.name.toLowerCase();
    if (name === "connection") connection = true;
    if (!NOT_FORWARDED.has(name)) list.push({ name, value: field.value });
  }
  // A Connection field naming others (rare): the general way.
  return connection ? forwardableHeaders(fields.map((f) => [f.name, f.value])) : list;
}

/**
 * Pairs of a node:http `rawHeaders` array ([name, value, name, value, …]).
 *
 * @param raw The flat array.
 * @returns Name/value pairs.
 */
export function* rawHeaderPairs(
  raw: readonly string[],
): Generator<[string, string]> {
  for (let i = 0; i + 1 < raw.length; i += 2) yield [raw[i]!, raw[i + 1]!];
}

/** The body length that Content-Length fields declare, or why they are unusable. */
export type DeclaredLength = { length: number | null } | { problem: string };

/**
 * Reads the Content-Length fields of a header block (RFC 9110 §8.6): the
 * same decimal value, possibly repeated or listed ("5, 5"), or none.
 *
 * @param fields Name/value pairs (any case).
 * @returns The length (null when none is declared), or why it is invalid.
 */
export function declaredLength(
  fields: Iterable<readonly [string, string]>,
): DeclaredLength {
  let length: number | null = null;
  for (const [name, value] of fields) {
    if (name.length !== 14 || name.toLowerCase() !== "content-length") continue;
    const next = withLength(length, value);
    if (typeof next === "string") return { problem: next };
    length = next;
  }
  return { length };
}

/**
 * {@linkcode declaredLength} of header fields as objects (a push head's),
 * read in place: no pairs made per field.
 *
 * @param fields The fields (names in any case).
 * @returns The length (null when none is declared), or why it is invalid.
 */
export function declaredFieldLength(fields: readonly HeaderField[]): DeclaredLength {
  let length: number | null = null;
  for (let i = 0; i < fields.length; i++) {
    const { name, value } = fields[i]!;
    if (name.length !== 14 || name.toLowerCase() !== "content-length") continue;
    const next = withLength(length, value);
    if (typeof next === "string") return { problem: next };
    length = next;
  }
  return { length };
}

/** The length so far with one Content-Length field's value, or why they are invalid. */
function withLength(length: number | null, value: string): number | null | string {
  // The usual value, one number, read by hand (no split and pattern per field).
  if (value.length > 0 && value.length <= 15) {
    let n = 0;
    for (let i = 0; i < value.length && n >= 0; i++) {
      const digit = value.charCodeAt(i) - 48;
      n = digit >= 0 && digit <= 9 ? n * 10 + digit : -1;
    }
    if (n >= 0) {
      return length !== null && n !== length
        ? `conflicting Content-Length values ${length} and ${n}`
        : n;
    }
  }
  for (const item of value.split(",")) {
    const text = item.trim();
    if (!/^\d{1,15}$/.test(text)) {
      return `Content-Length ${JSON.stringify(value)} is not a decimal byte count`;
    }
    const n = Number(text);
    if (length !== null && n !== length) {
      return `conflicting Content-Length values ${length} and ${n}`;
    }
    length = n;
  }
  return length;
}
