/**
 * Label sets and quoted strings of the text formats, checked in place: the
 * `{name="value",…}` of a sample or an exemplar, UTF-8 metric names quoted
 * inside the braces, and the escapes and UTF-8 of quoted strings.
 *
 * @private Internal code, does not follow semantic versioning.
 * @module
 */

import { isValidUtf8, quoteBytes } from "./_bytes.ts";
import { CLASS, LABEL_CHAR, LABEL_START } from "./_text_lexicon.ts";

// Byte values, declared here rather than imported: V8 folds a module's own
// constants and inlines its own small functions on the hot path, but not
// imported ones (measured: the checker ran 10-15% slower with imports).
const SP = 0x20;
const TAB = 0x09;
const RBRACE = 0x7d;
const EQ = 0x3d;
const COMMA = 0x2c;
const QUOTE = 0x22;
const BSLASH = 0x5c;

/** Whether a byte is a blank (space or tab). */
function isBlank(c: number | undefined): boolean {
  return c === SP || c === TAB;
}

/** Checks label sets and quoted strings for {@linkcode TextChecker}. */
export class LabelScanner {
  readonly #om: boolean;
  readonly #fail: (message: string) => never;
  /** Where a metric name quoted inside the braces starts; -1 for none. Reset by the caller. */
  quotedNameStart = -1;
  /** Where that quoted metric name ends. */
  quotedNameEnd = -1;

  /**
   * Creates a scanner.
   *
   * @param openMetrics Whether the body is OpenMetrics (no blanks around tokens).
   * @param fail Throws the checker's error for the current line.
   */
  constructor(openMetrics: boolean, fail: (message: string) => never) {
    this.#om = openMetrics;
    this.#fail = fail;
  }

  /**
   * Checks a label set starting at `{` and returns the index after `}`.
   * A quoted string standing alone is a metric name (UTF-8 names); its
   * position goes to quotedNameStart/quotedNameEnd.
   */
  labels(b: Uint8Array, i: number, e: number, exemplar: boolean): number {
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
        labelEnd = this.quoted(b, i, e, "label name");
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
        if (this.quotedNameStart >= 0) {
          this.#fail("metric name given twice in the label set");
        }
        if (labelEnd - labelStart === 2) this.#fail("empty metric name");
        this.quotedNameStart = labelStart + 1;
        this.quotedNameEnd = labelEnd - 1;
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
        i = this.quoted(b, i, e, "label value");
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
  quoted(b: Uint8Array, i: number, e: number, what: string): number {
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
}
