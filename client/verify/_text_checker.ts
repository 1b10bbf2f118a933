/**
 * Streaming line checker for the Prometheus text format 0.0.4 and
 * OpenMetrics text 1.0.
 *
 * Bytes are split into lines without decoding (_line_splitter.ts); each
 * complete line is checked in place, byte by byte, here. Only the current
 * partial line is kept between chunks (bounded by `maxLineBytes`), plus a
 * bounded table of metric-family names used to detect duplicate and late
 * metadata (_text_families.ts). The byte classes are in _text_lexicon.ts.
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
import { LabelScanner } from "./_label_scanner.ts";
import { LineSplitter } from "./_line_splitter.ts";
import {
  FamilyTable,
  KW_HELP,
  KW_NAMES,
  KW_TYPE,
  KW_UNIT,
  OPENMETRICS_TYPES,
  T_NONE,
  TEXT_TYPES,
} from "./_text_families.ts";
import { CLASS, matchesWord, NAME_CHAR, NAME_START, tokenEnd } from "./_text_lexicon.ts";
import { VerificationError } from "./verification_error.ts";

// Byte values, declared here rather than imported: V8 folds a module's own
// constants and inlines its own small functions on the hot path, but not
// imported ones (measured: the checker ran 10-15% slower with imports).
const CR = 0x0d;
const SP = 0x20;
const TAB = 0x09;
const HASH = 0x23;
const LBRACE = 0x7b;
const QUOTE = 0x22;
const UNDERSCORE = 0x5f;

/** Whether a byte is a blank (space or tab). */
function isBlank(c: number | undefined): boolean {
  return c === SP || c === TAB;
}

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

/** Checks a text-format body pushed in arbitrary chunks. */
export class TextChecker {
  readonly #om: boolean;
  readonly #lines: LineSplitter;
  readonly #families: FamilyTable;
  #eof = false;

  readonly #scan: LabelScanner;
  // Results of #metaName(), kept in fields to avoid
  // allocating a tuple per line.
  #nameStart = 0;
  #nameEnd = 0;

  /**
   * Creates a checker.
   *
   * @param options Format and bounds.
   */
  constructor(options: TextCheckerOptions) {
    this.#om = options.openMetrics;
    this.#lines = new LineSplitter(options.maxLineBytes);
    this.#families = new FamilyTable(options.openMetrics, options.maxFamilies);
    this.#scan = new LabelScanner(options.openMetrics, (message) => this.#fail(message));
  }

  /**
   * Checks the next chunk of the body.
   *
   * @param chunk Body bytes.
   * @throws {VerificationError} On the first problem.
   */
  push(chunk: Uint8Array): void {
    const lines = this.#lines;
    lines.feed(chunk);
    while (lines.pending) {
      if (this.#eof) this.#failAfterEof();
      if (!lines.next()) return;
      this.#line(lines.bytes, lines.start, lines.end);
    }
  }

  /**
   * Checks the end of the body: the last line without a line feed and, for
   * OpenMetrics, the `# EOF` terminator.
   *
   * @throws {VerificationError} On the first problem.
   */
  finish(): void {
    const lines = this.#lines;
    if (lines.carried) {
      if (this.#eof) this.#failAfterEof();
      lines.last();
      this.#line(lines.bytes, lines.start, lines.end);
    }
    if (this.#om && !this.#eof) {
      throw new VerificationError(
        `line ${lines.lineNo}: OpenMetrics body does not end with "# EOF"`,
        { kind: "malformed", line: lines.lineNo },
      );
    }
  }

  #fail(message: string): never {
    const line = this.#lines.lineNo;
    throw new VerificationError(`line ${line}: ${message}`, { kind: "malformed", line });
  }

  #failAfterEof(): never {
    const line = this.#lines.lineNo + 1;
    throw new VerificationError(`line ${line}: unexpected data after # EOF`, {
      kind: "malformed",
      line,
    });
  }

  #line(b: Uint8Array, s: number, e: number): void {
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
      const end = this.#scan.quoted(b, i, e, "metric name");
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
    const problem = this.#families.meta(kw, b, nameStart, nameEnd, type);
    if (problem !== null) this.#fail(problem);
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
      const scan = this.#scan;
      scan.quotedNameStart = -1;
      i = scan.labels(b, i, e, false);
      if (scan.quotedNameStart >= 0) {
        if (nameStart >= 0) {
          this.#fail("metric name given both before and inside the braces");
        }
        nameStart = scan.quotedNameStart;
        nameEnd = scan.quotedNameEnd;
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
    this.#families.sample(b, nameStart, nameEnd);
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
    i = this.#scan.labels(b, i + 2, e, true);
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
