/**
 * Streaming line checker for the Prometheus text format 0.0.4 and
 * OpenMetrics text 1.0.
 *
 * Bytes are split into lines without decoding; each complete line is checked
 * in place, byte by byte. Only the current partial line is kept between
 * chunks (bounded by `maxLineBytes`), plus a bounded table of metric-family
 * names used to detect duplicate and late metadata.
 *
 * @private Internal code, does not follow semantic versioning.
 * @module
 */

import {
  checkFloat,
  checkInt64,
  decodeLossy,
  isNonFiniteFloat,
  isValidUtf8,
  quoteBytes,
} from "./_bytes.ts";
import { VerificationError } from "./verification_error.ts";

/** Options for {@linkcode TextChecker}. */
export interface TextCheckerOptions {
  /** Check OpenMetrics 1.0 instead of the Prometheus text format 0.0.4. */
  openMetrics: boolean;
  /** Longest accepted line in bytes, without its line feed. */
  maxLineBytes: number;
  /**
   * How many metric-family names to remember for the duplicate/late
   * metadata checks. Beyond it those checks only cover the current family.
   */
  maxFamilies: number;
}

const NL = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const TAB = 0x09;
const HASH = 0x23;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const EQ = 0x3d;
const COMMA = 0x2c;
const QUOTE = 0x22;
const BSLASH = 0x5c;
const UNDERSCORE = 0x5f;

const NAME_START = 1;
const NAME_CHAR = 2;
const LABEL_START = 4;
const LABEL_CHAR = 8;
const CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const alpha = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
    c === UNDERSCORE;
  const digit = c >= 0x30 && c <= 0x39;
  const colon = c === 0x3a;
  CLASS[c] = (alpha || colon ? NAME_START : 0) |
    (alpha || colon || digit ? NAME_CHAR : 0) |
    (alpha ? LABEL_START : 0) | (alpha || digit ? LABEL_CHAR : 0);
}

const T_NONE = 0;
const T_COUNTER = 1;
const T_GAUGE = 2;
const T_HISTOGRAM = 3;
const T_GAUGE_HISTOGRAM = 4;
const T_SUMMARY = 5;
const T_INFO = 6;
const T_STATESET = 7;
const T_UNKNOWN = 8;

/**
 * TYPE values of the text format. `untyped` is the 0.0.4 spelling; the
 * OpenMetrics names are accepted too, because exporters send them with
 * `text/plain` and rejecting them is the exporter_exporter bug users hit
 * (issues #84, #90, #91).
 */
const TEXT_TYPES: ReadonlyMap<string, number> = new Map([
  ["counter", T_COUNTER],
  ["gauge", T_GAUGE],
  ["histogram", T_HISTOGRAM],
  ["summary", T_SUMMARY],
  ["untyped", T_UNKNOWN],
  ["unknown", T_UNKNOWN],
  ["info", T_INFO],
  ["stateset", T_STATESET],
  ["gaugehistogram", T_GAUGE_HISTOGRAM],
]);

const OPENMETRICS_TYPES: ReadonlyMap<string, number> = new Map([
  ["counter", T_COUNTER],
  ["gauge", T_GAUGE],
  ["histogram", T_HISTOGRAM],
  ["gaugehistogram", T_GAUGE_HISTOGRAM],
  ["stateset", T_STATESET],
  ["info", T_INFO],
  ["summary", T_SUMMARY],
  ["unknown", T_UNKNOWN],
]);

/** Sample-name suffixes belonging to a family of each type. */
const SUFFIXES: readonly (readonly string[])[] = [
  [""], // none
  ["", "_total", "_created"], // counter
  [""], // gauge
  ["_bucket", "_count", "_sum", "_created"], // histogram
  ["_bucket", "_gcount", "_gsum"], // gaugehistogram
  ["", "_count", "_sum", "_created"], // summary
  ["_info", ""], // info
  [""], // stateset
  [""], // unknown
];
const ENCODER = new TextEncoder();
const SUFFIX_BYTES: readonly (readonly Uint8Array[])[] = SUFFIXES.map((list) =>
  list.map((s) => ENCODER.encode(s))
);

const HAS_HELP = 1;
const HAS_TYPE = 2;
const HAS_UNIT = 4;
const SAMPLED = 8;

const KW_HELP = 1;
const KW_TYPE = 2;
const KW_UNIT = 3;
const KW_NAMES = ["", "HELP", "TYPE", "UNIT"];
const KW_FLAGS = [0, HAS_HELP, HAS_TYPE, HAS_UNIT];

interface Family {
  readonly name: string;
  /**
   * The name's bytes, while the family is the current one (remembered
   * families drop them: with many families they were most of the
   * verifier's memory).
   */
  bytes: Uint8Array | null;
  type: number;
  flags: number;
}

function isBlank(c: number | undefined): boolean {
  return c === SP || c === TAB;
}

function matchesWord(b: Uint8Array, i: number, word: string): boolean {
  for (let k = 0; k < word.length; k++) {
    if (b[i + k] !== word.charCodeAt(k)) return false;
  }
  return true;
}

/** First index at or after `i` holding a blank, `{` or nothing. */
function tokenEnd(b: Uint8Array, i: number, e: number): number {
  while (i < e && b[i] !== SP && b[i] !== TAB && b[i] !== LBRACE) i++;
  return i;
}

function matchesFamily(
  family: Family,
  b: Uint8Array,
  s: number,
  e: number,
): boolean {
  const fam = family.bytes;
  if (fam === null) return false;
  const fl = fam.length;
  const len = e - s;
  if (len < fl) return false;
  for (let k = 0; k < fl; k++) {
    if (b[s + k] !== fam[k]) return false;
  }
  const suffixes = SUFFIX_BYTES[family.type]!;
  outer: for (let n = 0; n < suffixes.length; n++) {
    const suffix = suffixes[n]!;
    if (len !== fl + suffix.length) continue;
    for (let k = 0; k < suffix.length; k++) {
      if (b[s + fl + k] !== suffix[k]) continue outer;
    }
    return true;
  }
  return false;
}

/** Checks a text-format body pushed in arbitrary chunks. */
export class TextChecker {
  readonly #om: boolean;
  readonly #maxLineBytes: number;
  readonly #maxFamilies: number;

  #partial = new Uint8Array(4096);
  #partialLength = 0;
  #lineNo = 0;
  #eof = false;

  #families = new Map<string, Family>();
  #tracking = true;
  #current: Family | undefined;
  #lastSampled: Family | undefined;

  // Results of #labels() and #metaName(), kept in fields to avoid
  // allocating a tuple per line.
  #quotedNameStart = -1;
  #quotedNameEnd = -1;
  #nameStart = 0;
  #nameEnd = 0;

  /**
   * Creates a checker.
   *
   * @param options Format and bounds.
   */
  constructor(options: TextCheckerOptions) {
    this.#om = options.openMetrics;
    this.#maxLineBytes = options.maxLineBytes;
    this.#maxFamilies = options.maxFamilies;
  }

  /**
   * Checks the next chunk of the body.
   *
   * @param chunk Body bytes.
   * @throws {VerificationError} On the first problem.
   */
  push(chunk: Uint8Array): void {
    const n = chunk.length;
    let pos = 0;
    while (pos < n) {
      if (this.#eof) this.#failAfterEof();
      const nl = chunk.indexOf(NL, pos);
      if (nl < 0) {
        this.#carry(chunk, pos, n);
        return;
      }
      if (this.#partialLength > 0) {
        this.#carry(chunk, pos, nl);
        const length = this.#partialLength;
        this.#partialLength = 0;
        this.#line(this.#partial, 0, length);
        if (this.#partial.length > 65536) this.#partial = new Uint8Array(4096);
      } else {
        if (nl - pos > this.#maxLineBytes) this.#failLineTooLong();
        this.#line(chunk, pos, nl);
      }
      pos = nl + 1;
    }
  }

  /**
   * Checks the end of the body: the last line without a line feed and, for
   * OpenMetrics, the `# EOF` terminator.
   *
   * @throws {VerificationError} On the first problem.
   */
  finish(): void {
    if (this.#partialLength > 0) {
      if (this.#eof) this.#failAfterEof();
      const length = this.#partialLength;
      this.#partialLength = 0;
      this.#line(this.#partial, 0, length);
    }
    if (this.#om && !this.#eof) {
      throw new VerificationError(
        `line ${this.#lineNo}: OpenMetrics body does not end with "# EOF"`,
        { kind: "malformed", line: this.#lineNo },
      );
    }
  }

  #carry(src: Uint8Array, start: number, end: number): void {
    const needed = this.#partialLength + (end - start);
    if (needed > this.#maxLineBytes) this.#failLineTooLong();
    if (needed > this.#partial.length) {
      const grown = new Uint8Array(
        Math.min(
          this.#maxLineBytes,
          Math.max(needed, this.#partial.length * 2),
        ),
      );
      grown.set(this.#partial.subarray(0, this.#partialLength));
      this.#partial = grown;
    }
    this.#partial.set(src.subarray(start, end), this.#partialLength);
    this.#partialLength = needed;
  }

  #fail(message: string): never {
    throw new VerificationError(`line ${this.#lineNo}: ${message}`, {
      kind: "malformed",
      line: this.#lineNo,
    });
  }

  #failLineTooLong(): never {
    const line = this.#lineNo + 1;
    throw new VerificationError(
      `line ${line}: line exceeds the limit of ${this.#maxLineBytes} bytes`,
      { kind: "too_large", line },
    );
  }

  #failAfterEof(): never {
    const line = this.#lineNo + 1;
    throw new VerificationError(`line ${line}: unexpected data after # EOF`, {
      kind: "malformed",
      line,
    });
  }

  #line(b: Uint8Array, s: number, e: number): void {
    this.#lineNo++;
    if (this.#om) {
      if (s === e) this.#fail("empty lines are not allowed in OpenMetrics");
      const c = b[s];
      if (c === HASH) this.#omComment(b, s, e);
      else if (isBlank(c)) {
        this.#fail("leading whitespace is not allowed in OpenMetrics");
      } else this.#sample(b, s, e);
      return;
    }
    let i = s;
    while (i < e && isBlank(b[i])) i++;
    if (i === e) return;
    if (b[i] === HASH) this.#textComment(b, i, e);
    else this.#sample(b, i, e);
  }

  // ---- metadata -----------------------------------------------------------

  #textComment(b: Uint8Array, s: number, e: number): void {
    let i = s + 1;
    // "#HELP" and "# foo" are plain comments, as in Prometheus' own lexer.
    if (i >= e || !isBlank(b[i])) return;
    while (i < e && isBlank(b[i])) i++;
    let kw = 0;
    if (i + 4 < e && isBlank(b[i + 4])) {
      if (matchesWord(b, i, "HELP")) kw = KW_HELP;
      else if (matchesWord(b, i, "TYPE")) kw = KW_TYPE;
    }
    if (kw === 0) return;
    i += 5;
    while (i < e && isBlank(b[i])) i++;
    if (i >= e) this.#fail(`expected metric name after # ${KW_NAMES[kw]}`);
    i = this.#metaName(b, i, e);
    const nameStart = this.#nameStart;
    const nameEnd = this.#nameEnd;
    if (kw === KW_HELP) {
      if (i < e && !isValidUtf8(b, i + 1, e)) {
        this.#fail("invalid UTF-8 in HELP text");
      }
      this.#meta(KW_HELP, b, nameStart, nameEnd, T_NONE);
      return;
    }
    while (i < e && isBlank(b[i])) i++;
    if (i >= e) {
      this.#fail(
        `missing metric type in # TYPE line for ${quoteBytes(b, nameStart, nameEnd)}`,
      );
    }
    const typeStart = i;
    while (i < e && !isBlank(b[i])) i++;
    const typeEnd = i;
    while (i < e && isBlank(b[i])) i++;
    if (i < e) {
      this.#fail(`unexpected text after metric type: ${quoteBytes(b, i, e)}`);
    }
    const type = TEXT_TYPES.get(decodeLossy(b, typeStart, typeEnd));
    if (type === undefined) {
      this.#failToken("metric type", b, typeStart, typeEnd, "unknown type");
    }
    this.#meta(KW_TYPE, b, nameStart, nameEnd, type);
  }

  #omComment(b: Uint8Array, s: number, e: number): void {
    if (e - s === 5 && matchesWord(b, s, "# EOF")) {
      this.#eof = true;
      return;
    }
    let kw = 0;
    if (e - s >= 7 && b[s + 1] === SP && b[s + 6] === SP) {
      if (matchesWord(b, s + 2, "HELP")) kw = KW_HELP;
      else if (matchesWord(b, s + 2, "TYPE")) kw = KW_TYPE;
      else if (matchesWord(b, s + 2, "UNIT")) kw = KW_UNIT;
    }
    if (kw === 0) {
      this.#fail(
        `invalid comment ${
          quoteBytes(b, s, e)
        }: OpenMetrics only allows "# HELP", "# TYPE", "# UNIT" and "# EOF"`,
      );
    }
    const what = `# ${KW_NAMES[kw]}`;
    if (s + 7 >= e) this.#fail(`expected metric name after ${what}`);
    const i = this.#metaName(b, s + 7, e);
    const nameStart = this.#nameStart;
    const nameEnd = this.#nameEnd;
    if (i >= e) {
      this.#fail(
        `expected a space and text after metric name in ${what} line`,
      );
    }
    const textStart = i + 1;
    let type = T_NONE;
    if (kw === KW_HELP) {
      if (!isValidUtf8(b, textStart, e)) {
        this.#fail("invalid UTF-8 in HELP text");
      }
    } else if (kw === KW_TYPE) {
      const found = OPENMETRICS_TYPES.get(decodeLossy(b, textStart, e));
      if (found === undefined) {
        this.#fail(`invalid metric type ${quoteBytes(b, textStart, e)}`);
      }
      type = found;
    } else if (e > textStart) {
      const unitLength = e - textStart;
      let ok = nameEnd - nameStart > unitLength + 1 &&
        b[nameEnd - unitLength - 1] === UNDERSCORE;
      for (let k = 0; ok && k < unitLength; k++) {
        if (b[nameEnd - unitLength + k] !== b[textStart + k]) ok = false;
      }
      if (!ok) {
        this.#fail(
          `unit ${quoteBytes(b, textStart, e)} is not a suffix of metric ${
            quoteBytes(b, nameStart, nameEnd)
          }`,
        );
      }
    }
    this.#meta(kw, b, nameStart, nameEnd, type);
  }

  /**
   * Reads the metric name of a metadata line, plain or quoted, into
   * #nameStart/#nameEnd and returns the index after it.
   */
  #metaName(b: Uint8Array, i: number, e: number): number {
    if (b[i] === QUOTE) {
      const end = this.#quoted(b, i, e, "metric name");
      if (end - i === 2) this.#fail("empty metric name");
      if (end < e && b[end] !== SP && (this.#om || b[end] !== TAB)) {
        this.#fail(
          `expected a space after metric name, got ${quoteBytes(b, end, e)}`,
        );
      }
      this.#nameStart = i + 1;
      this.#nameEnd = end - 1;
      return end;
    }
    let j = i;
    if (CLASS[b[j]!]! & NAME_START) {
      j++;
      while (j < e && CLASS[b[j]!]! & NAME_CHAR) j++;
    }
    if (j === i || (j < e && b[j] !== SP && (this.#om || b[j] !== TAB))) {
      let end = i;
      while (end < e && !isBlank(b[end])) end++;
      this.#fail(`invalid metric name ${quoteBytes(b, i, end)}`);
    }
    this.#nameStart = i;
    this.#nameEnd = j;
    return j;
  }

  #meta(
    kw: number,
    b: Uint8Array,
    nameStart: number,
    nameEnd: number,
    type: number,
  ): void {
    const name = decodeLossy(b, nameStart, nameEnd);
    let family = this.#current;
    if (family === undefined || family.name !== name) {
      family = this.#current = this.#family(name, b, nameStart, nameEnd);
    }
    const what = `# ${KW_NAMES[kw]}`;
    const flag = KW_FLAGS[kw]!;
    if (family.flags & flag) {
      this.#fail(
        `duplicate ${what} line for metric family ${JSON.stringify(name)}`,
      );
    }
    if ((family.flags & SAMPLED) && (kw === KW_TYPE || this.#om)) {
      this.#fail(
        `${what} line for metric family ${JSON.stringify(name)} must come before its samples`,
      );
    }
    if (kw === KW_TYPE) {
      if (this.#om && this.#tracking) {
        for (const suffix of SUFFIXES[type]!) {
          if (suffix === "") continue;
          const other = this.#families.get(name + suffix);
          if (other !== undefined && (other.flags & SAMPLED)) {
            this.#fail(
              `${what} line for metric family ${
                JSON.stringify(name)
              } must come before its samples (saw ${JSON.stringify(name + suffix)} earlier)`,
            );
          }
        }
      }
      family.type = type;
    }
    family.flags |= flag;
  }

  #family(name: string, b: Uint8Array, s: number, e: number): Family {
    const previous = this.#current;
    if (previous !== undefined) previous.bytes = null;
    let family = this.#tracking ? this.#families.get(name) : undefined;
    if (family !== undefined) {
      family.bytes = b.slice(s, e);
    } else {
      family = { name, bytes: b.slice(s, e), type: T_NONE, flags: 0 };
      if (this.#tracking) {
        if (this.#families.size >= this.#maxFamilies) {
          this.#tracking = false;
          this.#families.clear();
        } else {
          this.#families.set(name, family);
        }
      }
    }
    return family;
  }

  // ---- samples ------------------------------------------------------------

  #sample(b: Uint8Array, s: number, e: number): void {
    const om = this.#om;
    let i = s;
    let nameStart = -1;
    let nameEnd = -1;
    if (b[i] !== LBRACE) {
      if (!(CLASS[b[i]!]! & NAME_START)) {
        this.#fail(
          `invalid metric name ${quoteBytes(b, s, tokenEnd(b, s, e))}`,
        );
      }
      i++;
      while (i < e && CLASS[b[i]!]! & NAME_CHAR) i++;
      if (i < e && b[i] !== SP && b[i] !== LBRACE && (om || b[i] !== TAB)) {
        if (b[i] === CR) this.#failCarriageReturn();
        this.#fail(
          `invalid metric name ${quoteBytes(b, s, tokenEnd(b, s, e))}`,
        );
      }
      nameStart = s;
      nameEnd = i;
      if (!om) {
        let k = i;
        while (k < e && isBlank(b[k])) k++;
        if (k < e && b[k] === LBRACE) i = k;
      }
    }
    if (i < e && b[i] === LBRACE) {
      this.#quotedNameStart = -1;
      i = this.#labels(b, i, e, false);
      if (this.#quotedNameStart >= 0) {
        if (nameStart >= 0) {
          this.#fail("metric name given both before and inside the braces");
        }
        nameStart = this.#quotedNameStart;
        nameEnd = this.#quotedNameEnd;
      } else if (nameStart < 0) {
        this.#fail("missing metric name");
      }
    }
    if (om) {
      if (i < e && b[i] !== SP) {
        this.#fail(
          `expected a single space before the value of ${quoteBytes(b, nameStart, nameEnd)}, got ${
            quoteBytes(b, i, i + 1)
          }`,
        );
      }
      i++;
    } else {
      while (i < e && isBlank(b[i])) i++;
    }
    if (i >= e) {
      this.#fail(
        `missing value for metric ${quoteBytes(b, nameStart, nameEnd)}`,
      );
    }
    const valueStart = i;
    while (i < e && b[i] !== SP && (om || b[i] !== TAB)) i++;
    const bad = checkFloat(b, valueStart, i);
    if (bad !== undefined) {
      const subject = ` for metric ${quoteBytes(b, nameStart, nameEnd)}`;
      this.#failToken("value", b, valueStart, i, bad, subject);
    }
    this.#onSample(b, nameStart, nameEnd);
    if (i === e) return;
    if (om) this.#omTail(b, i, e);
    else this.#textTail(b, i, e);
  }

  #textTail(b: Uint8Array, i: number, e: number): void {
    while (i < e && isBlank(b[i])) i++;
    if (i === e) return;
    if (b[i] === HASH) {
      this.#fail(
        "exemplars and trailing comments are not allowed in the Prometheus text format",
      );
    }
    const start = i;
    while (i < e && !isBlank(b[i])) i++;
    const bad = checkInt64(b, start, i);
    if (bad !== undefined) this.#failToken("timestamp", b, start, i, bad);
    while (i < e && isBlank(b[i])) i++;
    if (i < e) {
      this.#fail(`unexpected text after timestamp: ${quoteBytes(b, i, e)}`);
    }
  }

  /** `i` is at the space after the value. */
  #omTail(b: Uint8Array, i: number, e: number): void {
    i++;
    if (i < e && b[i] === HASH) {
      this.#exemplar(b, i, e);
      return;
    }
    const start = i;
    while (i < e && b[i] !== SP) i++;
    this.#checkOmTimestamp(b, start, i, "timestamp");
    if (i === e) return;
    i++;
    if (i < e && b[i] === HASH) {
      this.#exemplar(b, i, e);
      return;
    }
    this.#fail(`unexpected text after timestamp: ${quoteBytes(b, i - 1, e)}`);
  }

  #exemplar(b: Uint8Array, i: number, e: number): void {
    if (i + 2 >= e || b[i + 1] !== SP || b[i + 2] !== LBRACE) {
      this.#fail(`invalid exemplar ${quoteBytes(b, i, e)}: expected "# {"`);
    }
    i = this.#labels(b, i + 2, e, true);
    if (i >= e || b[i] !== SP) {
      this.#fail("expected a space and a value after the exemplar labels");
    }
    i++;
    const valueStart = i;
    while (i < e && b[i] !== SP) i++;
    const bad = checkFloat(b, valueStart, i);
    if (bad !== undefined) {
      this.#failToken("exemplar value", b, valueStart, i, bad);
    }
    if (i === e) return;
    i++;
    const start = i;
    while (i < e && b[i] !== SP) i++;
    this.#checkOmTimestamp(b, start, i, "exemplar timestamp");
    if (i < e) {
      this.#fail(
        `unexpected text after exemplar timestamp: ${quoteBytes(b, i, e)}`,
      );
    }
  }

  #checkOmTimestamp(b: Uint8Array, s: number, e: number, what: string): void {
    const bad = checkFloat(b, s, e) ??
      (isNonFiniteFloat(b, s) ? "must be finite" : undefined);
    if (bad !== undefined) this.#failToken(what, b, s, e, bad);
  }

  /**
   * Checks a label set starting at `{` and returns the index after `}`.
   * A quoted string standing alone is a metric name (UTF-8 names); its
   * position goes to #quotedNameStart/#quotedNameEnd.
   */
  #labels(b: Uint8Array, i: number, e: number, exemplar: boolean): number {
    const om = this.#om;
    i++;
    if (!om) { while (i < e && isBlank(b[i])) i++; }
    if (i < e && b[i] === RBRACE) return i + 1;
    for (;;) {
      if (i >= e) this.#fail('unterminated label set: missing "}"');
      const labelStart = i;
      let labelEnd: number;
      let quoted = false;
      const c = b[i]!;
      if (c === QUOTE) {
        labelEnd = this.#quoted(b, i, e, "label name");
        quoted = true;
      } else if (CLASS[c]! & LABEL_START) {
        labelEnd = i + 1;
        while (labelEnd < e && CLASS[b[labelEnd]!]! & LABEL_CHAR) labelEnd++;
      } else {
        this.#fail(
          `expected label name, got ${quoteBytes(b, i, this.#labelTokenEnd(b, i, e))}`,
        );
      }
      i = labelEnd;
      if (!om) { while (i < e && isBlank(b[i])) i++; }
      if (
        quoted && !exemplar && i < e && (b[i] === COMMA || b[i] === RBRACE)
      ) {
        if (this.#quotedNameStart >= 0) {
          this.#fail("metric name given twice in the label set");
        }
        if (labelEnd - labelStart === 2) this.#fail("empty metric name");
        this.#quotedNameStart = labelStart + 1;
        this.#quotedNameEnd = labelEnd - 1;
      } else {
        if (quoted && labelEnd - labelStart === 2) {
          this.#fail("empty label name");
        }
        if (i >= e || b[i] !== EQ) {
          const next = b[i];
          if (
            !quoted && i === labelEnd && i < e && !isBlank(next) &&
            next !== QUOTE
          ) {
            this.#fail(
              `invalid label name ${
                quoteBytes(b, labelStart, this.#labelTokenEnd(b, labelStart, e))
              }`,
            );
          }
          this.#fail(
            `expected "=" after label name ${quoteBytes(b, labelStart, labelEnd)}, got ${
              quoteBytes(b, i, Math.min(i + 1, e))
            }`,
          );
        }
        i++;
        if (!om) { while (i < e && isBlank(b[i])) i++; }
        if (i >= e || b[i] !== QUOTE) {
          this.#fail(
            `expected a quoted value for label ${quoteBytes(b, labelStart, labelEnd)}`,
          );
        }
        i = this.#quoted(b, i, e, "label value");
        if (!om) { while (i < e && isBlank(b[i])) i++; }
      }
      if (i >= e) this.#fail('unterminated label set: missing "}"');
      if (b[i] === COMMA) {
        i++;
        if (!om) { while (i < e && isBlank(b[i])) i++; }
        if (i < e && b[i] === RBRACE) return i + 1;
        continue;
      }
      if (b[i] === RBRACE) return i + 1;
      this.#fail(
        `expected "," or "}" in the label set, got ${quoteBytes(b, i, i + 1)}`,
      );
    }
  }

  #labelTokenEnd(b: Uint8Array, i: number, e: number): number {
    while (
      i < e && b[i] !== EQ && b[i] !== COMMA && b[i] !== RBRACE &&
      !isBlank(b[i])
    ) i++;
    return i;
  }

  /**
   * Checks a quoted string starting at `"` (any backslash escape, no raw
   * line feed since lines are already split, valid UTF-8) and returns the
   * index after the closing quote.
   */
  #quoted(b: Uint8Array, i: number, e: number, what: string): number {
    let j = i + 1;
    let high = false;
    while (j < e) {
      const c = b[j]!;
      if (c === QUOTE) break;
      if (c === BSLASH) {
        if ((b[j + 1] ?? 0) >= 0x80) high = true;
        j += 2;
        continue;
      }
      if (c >= 0x80) high = true;
      j++;
    }
    if (j >= e) this.#fail(`unterminated quoted ${what}`);
    if (high && !isValidUtf8(b, i + 1, j)) {
      this.#fail(`invalid UTF-8 in ${what}`);
    }
    return j + 1;
  }

  #onSample(b: Uint8Array, s: number, e: number): void {
    let family = this.#current;
    if (family === undefined || !matchesFamily(family, b, s, e)) {
      family = this.#current = this.#family(decodeLossy(b, s, e), b, s, e);
    }
    if (family !== this.#lastSampled) {
      family.flags |= SAMPLED;
      this.#lastSampled = family;
    }
  }

  #failToken(
    what: string,
    b: Uint8Array,
    s: number,
    e: number,
    reason: string,
    subject = "",
  ): never {
    if (b.subarray(s, e).includes(CR)) this.#failCarriageReturn();
    this.#fail(`invalid ${what} ${quoteBytes(b, s, e)}${subject}: ${reason}`);
  }

  #failCarriageReturn(): never {
    this.#fail("carriage return in line (CRLF line endings are not allowed)");
  }
}
