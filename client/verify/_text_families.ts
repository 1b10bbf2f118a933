/**
 * Metric-family bookkeeping for the text checker: the TYPE values of each
 * format, which sample names belong to a family of each type, and a bounded
 * table of the families seen, to find duplicate and late metadata.
 *
 * @private Internal code, does not follow semantic versioning.
 * @module
 */

import { decodeLossy } from "./_bytes.ts";

/** No TYPE seen. */
export const T_NONE = 0;
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
export const TEXT_TYPES: ReadonlyMap<string, number> = new Map([
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

/** TYPE values of OpenMetrics 1.0. */
export const OPENMETRICS_TYPES: ReadonlyMap<string, number> = new Map([
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

/** A `# HELP` line. */
export const KW_HELP = 1;
/** A `# TYPE` line. */
export const KW_TYPE = 2;
/** A `# UNIT` line (OpenMetrics). */
export const KW_UNIT = 3;
/** The keyword of each KW_ value. */
export const KW_NAMES: readonly string[] = ["", "HELP", "TYPE", "UNIT"];
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

/**
 * The metric families seen in one body: the current one, and up to
 * `maxFamilies` remembered by name. Beyond the bound the duplicate and late
 * metadata checks only cover the current family.
 */
export class FamilyTable {
  readonly #om: boolean;
  readonly #maxFamilies: number;
  #families = new Map<string, Family>();
  #tracking = true;
  #current: Family | undefined;
  #lastSampled: Family | undefined;

  /**
   * Creates an empty table.
   *
   * @param openMetrics Whether the body is OpenMetrics (stricter order).
   * @param maxFamilies How many family names to remember.
   */
  constructor(openMetrics: boolean, maxFamilies: number) {
    this.#om = openMetrics;
    this.#maxFamilies = maxFamilies;
  }

  /**
   * Records a metadata line for the family named `b[nameStart, nameEnd)`.
   *
   * @param kw KW_HELP, KW_TYPE or KW_UNIT.
   * @param b The line's bytes.
   * @param nameStart Where the family name starts.
   * @param nameEnd Where it ends.
   * @param type For KW_TYPE, the T_ value.
   * @returns Why the line is out of place (duplicate or after samples), or null.
   */
  meta(
    kw: number,
    b: Uint8Array,
    nameStart: number,
    nameEnd: number,
    type: number,
  ): string | null {
    const name = decodeLossy(b, nameStart, nameEnd);
    let family = this.#current;
    if (family === undefined || family.name !== name) {
      family = this.#current = this.#family(name, b, nameStart, nameEnd);
    }
    const what = `# ${KW_NAMES[kw]}`;
    const flag = KW_FLAGS[kw]!;
    if (family.flags & flag) {
      return `duplicate ${what} line for metric family ${JSON.stringify(name)}`;
    }
    if ((family.flags & SAMPLED) && (kw === KW_TYPE || this.#om)) {
      return `${what} line for metric family ${JSON.stringify(name)} must come before its samples`;
    }
    if (kw === KW_TYPE) {
      if (this.#om && this.#tracking) {
        for (const suffix of SUFFIXES[type]!) {
          if (suffix === "") continue;
          const other = this.#families.get(name + suffix);
          if (other !== undefined && (other.flags & SAMPLED)) {
            return `${what} line for metric family ${
              JSON.stringify(name)
            } must come before its samples (saw ${JSON.stringify(name + suffix)} earlier)`;
          }
        }
      }
      family.type = type;
    }
    family.flags |= flag;
    return null;
  }

  /**
   * Records a sample named `b[s, e)`: it belongs to the current family when
   * its name is the family's with one of its type's suffixes, else it
   * starts another.
   *
   * @param b The line's bytes.
   * @param s Where the sample's name starts.
   * @param e Where it ends.
   */
  sample(b: Uint8Array, s: number, e: number): void {
    let family = this.#current;
    if (family === undefined || !matchesFamily(family, b, s, e)) {
      family = this.#current = this.#family(decodeLossy(b, s, e), b, s, e);
    }
    if (family !== this.#lastSampled) {
      family.flags |= SAMPLED;
      this.#lastSampled = family;
    }
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
}
