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

// A slot's state (Uint16Array): the T_ value in bits 0-3, the flags above in
// bits 4-7, and OCCUPIED.
const FLAGS_SHIFT = 4;
const TYPE_MASK = 0x0f;
const OCCUPIED = 0x100;
/** Slots of a new table (a power of two); it doubles at half full. */
const FIRST_SLOTS = 256;
/** The current name's buffer is dropped for a small one past this size. */
const NAME_SHRINK_ABOVE = 4096;

const FNV_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const MURMUR_SEED = 0x9747b28c;

/** Murmur3's 32-bit finalizer: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The metric families seen in one body: the current one, and up to
 * `maxFamilies` remembered. Beyond the bound the duplicate and late
 * metadata checks only cover the current family.
 *
 * A remembered family is no string or object: it is one slot of an
 * open-addressing table (linear probing) in typed arrays, keyed by a 64-bit
 * hash of its name's bytes, two independent 32-bit hashes (FNV-1a and a
 * byte-wise Murmur3, each through Murmur3's finalizer), holding its type and
 * flags in 16 bits: 10 bytes a slot, at most half of them used, so 20-40
 * bytes a family (a Map of names and objects took about 150). Only the
 * current family's name is kept, as bytes, to match its samples.
 *
 * Two different names with the same 64-bit hash would share a slot: a valid
 * body could then be refused for a duplicate or late `# TYPE`/`# HELP`. With
 * n families in a body the chance that any two collide is at most
 * n(n-1)/2 × 2^-64: about 5 × 10^-12 for the 14,000 families of the
 * benchmark's 20 MiB body, 3 × 10^-10 at the default bound of 100,000, per
 * body. Names are compared as bytes, which is what comparing their decoded
 * strings did: quoted names are checked to be valid UTF-8, plain ones are
 * ASCII.
 */
export class FamilyTable {
  readonly #om: boolean;
  readonly #maxFamilies: number;
  #tracking = true;
  /** Two hashes per slot: [2i] and [2i + 1]. */
  #keys = new Uint32Array(2 * FIRST_SLOTS);
  #states = new Uint16Array(FIRST_SLOTS);
  #mask = FIRST_SLOTS - 1;
  #count = 0;

  // The current family: its name's bytes, type, flags and slot (-1 when it
  // is not remembered).
  #hasCurrent = false;
  #name = new Uint8Array(64);
  #nameLength = 0;
  #type = T_NONE;
  #flags = 0;
  #slot = -1;

  // Hash state, in fields to avoid allocating a pair per hash.
  #h1 = 0;
  #h2 = 0;

  /**
   * Creates an empty table.
   *
   * @param openMetrics Whether the body is OpenMetrics (stricter order).
   * @param maxFamilies How many families to remember.
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
    if (!this.#hasCurrent || !this.#isCurrent(b, nameStart, nameEnd)) {
      this.#switchTo(b, nameStart, nameEnd);
    }
    const flag = KW_FLAGS[kw]!;
    const flags = this.#flags;
    if (flags & flag) {
      return `duplicate # ${KW_NAMES[kw]} line for metric family ${
        JSON.stringify(decodeLossy(b, nameStart, nameEnd))
      }`;
    }
    if ((flags & SAMPLED) && (kw === KW_TYPE || this.#om)) {
      return `# ${KW_NAMES[kw]} line for metric family ${
        JSON.stringify(decodeLossy(b, nameStart, nameEnd))
      } must come before its samples`;
    }
    if (kw === KW_TYPE) {
      if (this.#om && this.#tracking) {
        const late = this.#sampledWithSuffix(b, nameStart, nameEnd, type);
        if (late !== null) return late;
      }
      this.#type = type;
    }
    this.#flags = flags | flag;
    this.#store();
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
    if (!this.#hasCurrent || !this.#matchesCurrent(b, s, e)) this.#switchTo(b, s, e);
    if (!(this.#flags & SAMPLED)) {
      this.#flags |= SAMPLED;
      this.#store();
    }
  }

  /** The OpenMetrics check of a TYPE: no sample `NAME<suffix>` of its type came earlier. */
  #sampledWithSuffix(b: Uint8Array, s: number, e: number, type: number): string | null {
    const suffixes = SUFFIX_BYTES[type]!;
    for (let n = 0; n < suffixes.length; n++) {
      const suffix = suffixes[n]!;
      if (suffix.length === 0) continue;
      this.#hashStart();
      this.#hashBytes(b, s, e);
      this.#hashBytes(suffix, 0, suffix.length);
      const slot = this.#find(e - s + suffix.length);
      const state = this.#states[slot]!;
      if ((state & OCCUPIED) && ((state >>> FLAGS_SHIFT) & SAMPLED)) {
        const name = decodeLossy(b, s, e);
        return `# TYPE line for metric family ${
          JSON.stringify(name)
        } must come before its samples (saw ${JSON.stringify(name + SUFFIXES[type]![n])} earlier)`;
      }
    }
    return null;
  }

  #isCurrent(b: Uint8Array, s: number, e: number): boolean {
    const length = this.#nameLength;
    if (e - s !== length) return false;
    const name = this.#name;
    for (let k = 0; k < length; k++) {
      if (b[s + k] !== name[k]) return false;
    }
    return true;
  }

  #matchesCurrent(b: Uint8Array, s: number, e: number): boolean {
    const name = this.#name;
    const fl = this.#nameLength;
    const len = e - s;
    if (len < fl) return false;
    for (let k = 0; k < fl; k++) {
      if (b[s + k] !== name[k]) return false;
    }
    const suffixes = SUFFIX_BYTES[this.#type]!;
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

  /** Makes the family named `b[s, e)` the current one, remembering it when there is room. */
  #switchTo(b: Uint8Array, s: number, e: number): void {
    const length = e - s;
    let name = this.#name;
    if (length > name.length || (name.length > NAME_SHRINK_ABOVE && length <= 64)) {
      name = this.#name = new Uint8Array(Math.max(64, length));
    }
    name.set(b.subarray(s, e));
    this.#nameLength = length;
    this.#hasCurrent = true;
    this.#type = T_NONE;
    this.#flags = 0;
    this.#slot = -1;
    if (!this.#tracking) return;
    this.#hashStart();
    this.#hashBytes(b, s, e);
    let slot = this.#find(length);
    const state = this.#states[slot]!;
    if (state & OCCUPIED) {
      this.#type = state & TYPE_MASK;
      this.#flags = (state >>> FLAGS_SHIFT) & 0x0f;
      this.#slot = slot;
      return;
    }
    if (this.#count >= this.#maxFamilies) {
      // Beyond the bound: forget them all, check only the current family.
      this.#tracking = false;
      this.#keys = new Uint32Array(0);
      this.#states = new Uint16Array(0);
      this.#count = 0;
      return;
    }
    if (2 * (this.#count + 1) > this.#states.length) {
      this.#grow();
      slot = this.#probe(this.#h1, this.#h2);
    }
    this.#keys[2 * slot] = this.#h1;
    this.#keys[2 * slot + 1] = this.#h2;
    this.#states[slot] = OCCUPIED;
    this.#count++;
    this.#slot = slot;
  }

  /** Writes the current family's type and flags to its slot. */
  #store(): void {
    const slot = this.#slot;
    if (slot >= 0) {
      this.#states[slot] = OCCUPIED | (this.#flags << FLAGS_SHIFT) | this.#type;
    }
  }

  #hashStart(): void {
    this.#h1 = FNV_BASIS;
    this.#h2 = MURMUR_SEED;
  }

  #hashBytes(b: Uint8Array, s: number, e: number): void {
    let h1 = this.#h1;
    let h2 = this.#h2;
    for (let i = s; i < e; i++) {
      const c = b[i]!;
      h1 = Math.imul(h1 ^ c, FNV_PRIME);
      let k = Math.imul(c, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      h2 ^= Math.imul(k, 0x1b873593);
      h2 = (h2 << 13) | (h2 >>> 19);
      h2 = (Math.imul(h2, 5) + 0xe6546b64) | 0;
    }
    this.#h1 = h1;
    this.#h2 = h2;
  }

  /**
   * Finishes the hash of `length` bytes into #h1/#h2 and returns the slot
   * holding that key, or the empty slot where it goes.
   */
  #find(length: number): number {
    const h1 = this.#h1 = fmix32(this.#h1 ^ length);
    const h2 = this.#h2 = fmix32(this.#h2 ^ length);
    return this.#probe(h1, h2);
  }

  #probe(h1: number, h2: number): number {
    const keys = this.#keys;
    const states = this.#states;
    const mask = this.#mask;
    let slot = h1 & mask;
    while (states[slot]! & OCCUPIED) {
      if (keys[2 * slot] === h1 && keys[2 * slot + 1] === h2) return slot;
      slot = (slot + 1) & mask;
    }
    return slot;
  }

  /** Doubles the table; only called while no family holds a slot index (#slot is -1). */
  #grow(): void {
    const keys = this.#keys;
    const states = this.#states;
    const slots = states.length * 2;
    this.#keys = new Uint32Array(2 * slots);
    this.#states = new Uint16Array(slots);
    this.#mask = slots - 1;
    for (let i = 0; i < states.length; i++) {
      const state = states[i]!;
      if (!(state & OCCUPIED)) continue;
      const h1 = keys[2 * i]!;
      const h2 = keys[2 * i + 1]!;
      const slot = this.#probe(h1, h2);
      this.#keys[2 * slot] = h1;
      this.#keys[2 * slot + 1] = h2;
      this.#states[slot] = state;
    }
  }
}
