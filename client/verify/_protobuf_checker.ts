/**
 * Streaming structural checker for the delimited protobuf exposition: a
 * sequence of `varint length` + `io.prometheus.client.MetricFamily` message.
 *
 * The wire format is walked by hand against a compact copy of the
 * `metrics.proto` schema (field numbers and wire types, strings are UTF-8,
 * required names present, enums in range, packed repeated scalars well
 * formed). Unknown fields are skipped, as protobuf requires. At most one
 * message is held in memory, and only when it spans chunks; its size is
 * bounded by `maxMessageBytes`.
 *
 * @private Internal code, does not follow semantic versioning.
 * @module
 */

import { isValidUtf8 } from "./_bytes.ts";
import { VerificationError } from "./verification_error.ts";

/** Options for {@linkcode ProtobufChecker}. */
export interface ProtobufCheckerOptions {
  /** Largest accepted MetricFamily message in bytes. */
  maxMessageBytes: number;
}

const W_VARINT = 0;
const W_I64 = 1;
const W_LEN = 2;
const W_SGROUP = 3;
const W_EGROUP = 4;
const W_I32 = 5;

const K_VARINT = 0;
const K_I64 = 1;
const K_STRING = 2;
const K_MESSAGE = 3;
const K_I32 = 4;
const K_ENUM = 5;

const KIND_WIRE = [W_VARINT, W_I64, W_LEN, W_LEN, W_I32, W_VARINT];
const KIND_NAMES = [
  "a varint",
  "a 64-bit value",
  "a string",
  "a message",
  "a 32-bit value",
  "an enum",
];
const MAX_FIELD_NUMBER = 536870911;

interface FieldSpec {
  readonly name: string;
  readonly kind: number;
  readonly repeated: boolean;
  readonly message: MessageSpec | undefined;
  readonly enumMax: number;
  readonly required: boolean;
}

interface MessageSpec {
  readonly name: string;
  readonly fields: readonly (FieldSpec | undefined)[];
  readonly requiredMask: number;
}

interface FieldInit {
  name: string;
  kind: number;
  repeated?: boolean;
  message?: MessageSpec;
  enumMax?: number;
  required?: boolean;
}

function message(name: string, init: Record<number, FieldInit>): MessageSpec {
  const fields: (FieldSpec | undefined)[] = [];
  let requiredMask = 0;
  for (const [key, f] of Object.entries(init)) {
    const number = Number(key);
    fields[number] = {
      name: f.name,
      kind: f.kind,
      repeated: f.repeated ?? false,
      message: f.message,
      enumMax: f.enumMax ?? 0,
      required: f.required ?? false,
    };
    if (f.required) requiredMask |= 1 << number;
  }
  return { name, fields, requiredMask };
}

// The schema of prometheus/client_model io/prometheus/client/metrics.proto.
const TIMESTAMP = message("Timestamp", {
  1: { name: "seconds", kind: K_VARINT },
  2: { name: "nanos", kind: K_VARINT },
});
const LABEL_PAIR = message("LabelPair", {
  1: { name: "name", kind: K_STRING, required: true },
  2: { name: "value", kind: K_STRING },
});
const EXEMPLAR = message("Exemplar", {
  1: { name: "label", kind: K_MESSAGE, repeated: true, message: LABEL_PAIR },
  2: { name: "value", kind: K_I64 },
  3: { name: "timestamp", kind: K_MESSAGE, message: TIMESTAMP },
});
const GAUGE = message("Gauge", { 1: { name: "value", kind: K_I64 } });
const COUNTER = message("Counter", {
  1: { name: "value", kind: K_I64 },
  2: { name: "exemplar", kind: K_MESSAGE, message: EXEMPLAR },
  3: { name: "created_timestamp", kind: K_MESSAGE, message: TIMESTAMP },
});
const QUANTILE = message("Quantile", {
  1: { name: "quantile", kind: K_I64 },
  2: { name: "value", kind: K_I64 },
});
const SUMMARY = message("Summary", {
  1: { name: "sample_count", kind: K_VARINT },
  2: { name: "sample_sum", kind: K_I64 },
  3: { name: "quantile", kind: K_MESSAGE, repeated: true, message: QUANTILE },
  4: { name: "created_timestamp", kind: K_MESSAGE, message: TIMESTAMP },
});
const UNTYPED = message("Untyped", { 1: { name: "value", kind: K_I64 } });
const BUCKET = message("Bucket", {
  1: { name: "cumulative_count", kind: K_VARINT },
  2: { name: "upper_bound", kind: K_I64 },
  3: { name: "exemplar", kind: K_MESSAGE, message: EXEMPLAR },
  4: { name: "cumulative_count_float", kind: K_I64 },
});
const BUCKET_SPAN = message("BucketSpan", {
  1: { name: "offset", kind: K_VARINT },
  2: { name: "length", kind: K_VARINT },
});
const HISTOGRAM = message("Histogram", {
  1: { name: "sample_count", kind: K_VARINT },
  2: { name: "sample_sum", kind: K_I64 },
  3: { name: "bucket", kind: K_MESSAGE, repeated: true, message: BUCKET },
  4: { name: "sample_count_float", kind: K_I64 },
  5: { name: "schema", kind: K_VARINT },
  6: { name: "zero_threshold", kind: K_I64 },
  7: { name: "zero_count", kind: K_VARINT },
  8: { name: "zero_count_float", kind: K_I64 },
  9: {
    name: "negative_span",
    kind: K_MESSAGE,
    repeated: true,
    message: BUCKET_SPAN,
  },
  10: { name: "negative_delta", kind: K_VARINT, repeated: true },
  11: { name: "negative_count", kind: K_I64, repeated: true },
  12: {
    name: "positive_span",
    kind: K_MESSAGE,
    repeated: true,
    message: BUCKET_SPAN,
  },
  13: { name: "positive_delta", kind: K_VARINT, repeated: true },
  14: { name: "positive_count", kind: K_I64, repeated: true },
  15: { name: "created_timestamp", kind: K_MESSAGE, message: TIMESTAMP },
  16: { name: "exemplars", kind: K_MESSAGE, repeated: true, message: EXEMPLAR },
});
const METRIC = message("Metric", {
  1: { name: "label", kind: K_MESSAGE, repeated: true, message: LABEL_PAIR },
  2: { name: "gauge", kind: K_MESSAGE, message: GAUGE },
  3: { name: "counter", kind: K_MESSAGE, message: COUNTER },
  4: { name: "summary", kind: K_MESSAGE, message: SUMMARY },
  5: { name: "untyped", kind: K_MESSAGE, message: UNTYPED },
  6: { name: "timestamp_ms", kind: K_VARINT },
  7: { name: "histogram", kind: K_MESSAGE, message: HISTOGRAM },
});
/** MetricType: COUNTER=0 … GAUGE_HISTOGRAM=5. */
const METRIC_TYPE_MAX = 5;
const METRIC_FAMILY = message("MetricFamily", {
  1: { name: "name", kind: K_STRING, required: true },
  2: { name: "help", kind: K_STRING },
  3: { name: "type", kind: K_ENUM, enumMax: METRIC_TYPE_MAX },
  4: { name: "metric", kind: K_MESSAGE, repeated: true, message: METRIC },
  5: { name: "unit", kind: K_STRING },
});

const VARINT_TRUNCATED = -1;
const VARINT_MALFORMED = -2;

/** Checks a delimited protobuf body pushed in arbitrary chunks. */
export class ProtobufChecker {
  readonly #maxMessageBytes: number;

  /** Stream offset of the next byte pushed. */
  #offset = 0;
  #messageIndex = 0;

  // Length prefix being read.
  #lengthBytes = 0;
  #lengthValue = 0;
  #lengthMultiplier = 1;
  #lengthOffset = 0;

  // Message body being collected when it spans chunks.
  #inMessage = false;
  #messageLength = 0;
  #messageOffset = 0;
  #buffer: Uint8Array | undefined;
  #filled = 0;

  // Scratch state of the walk.
  #value = 0;
  #base = 0;
  #start = 0;
  /** Field names from the root to the field being checked, for messages. */
  readonly #names: (string | undefined)[] = ["MetricFamily"];
  #pathLength = 0;

  /**
   * Creates a checker.
   *
   * @param options Bounds.
   */
  constructor(options: ProtobufCheckerOptions) {
    this.#maxMessageBytes = options.maxMessageBytes;
  }

  /**
   * Checks the next chunk of the body.
   *
   * @param chunk Body bytes.
   * @throws {VerificationError} On the first problem.
   */
  push(chunk: Uint8Array): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (!this.#inMessage) {
        if (this.#lengthBytes === 0) this.#lengthOffset = this.#offset + i;
        const c = chunk[i++]!;
        this.#lengthBytes++;
        this.#lengthValue += (c & 0x7f) * this.#lengthMultiplier;
        this.#lengthMultiplier *= 128;
        if (this.#lengthValue > this.#maxMessageBytes) {
          throw new VerificationError(
            `${this.#where(this.#lengthOffset)}: message length ${
              c >= 0x80 ? "of at least " : ""
            }${this.#lengthValue} bytes exceeds the limit of ${this.#maxMessageBytes} bytes`,
            { kind: "too_large", offset: this.#lengthOffset },
          );
        }
        if (c >= 0x80) {
          if (this.#lengthBytes >= 10) {
            this.#failAt(this.#lengthOffset, "malformed length varint");
          }
          continue;
        }
        this.#messageLength = this.#lengthValue;
        this.#messageOffset = this.#offset + i;
        this.#lengthBytes = 0;
        this.#lengthValue = 0;
        this.#lengthMultiplier = 1;
        this.#inMessage = true;
        this.#filled = 0;
        if (n - i >= this.#messageLength) {
          // Whole message in this chunk: check it in place.
          this.#checkFamily(chunk, i, i + this.#messageLength);
          i += this.#messageLength;
          this.#inMessage = false;
        } else {
          this.#buffer = new Uint8Array(this.#messageLength);
        }
        continue;
      }
      const buffer = this.#buffer!;
      const take = Math.min(n - i, this.#messageLength - this.#filled);
      buffer.set(chunk.subarray(i, i + take), this.#filled);
      this.#filled += take;
      i += take;
      if (this.#filled === this.#messageLength) {
        this.#buffer = undefined;
        this.#inMessage = false;
        this.#checkFamily(buffer, 0, buffer.length);
      }
    }
    this.#offset += n;
  }

  /**
   * Checks that the body did not stop inside a length prefix or message.
   *
   * @throws {VerificationError} When the body is truncated.
   */
  finish(): void {
    if (this.#lengthBytes > 0) {
      this.#failAt(this.#lengthOffset, "body ends inside a length prefix");
    }
    if (this.#inMessage) {
      this.#failAt(
        this.#messageOffset,
        `body ends after ${this.#filled} of ${this.#messageLength} message bytes`,
      );
    }
  }

  #where(offset: number): string {
    return `protobuf message ${this.#messageIndex + 1} at byte ${offset}`;
  }

  #failAt(offset: number, reason: string): never {
    const names = this.#names.slice(0, this.#pathLength).filter((n) => n !== undefined);
    const path = names.length > 0 ? `${names.join(".")}: ` : "";
    throw new VerificationError(`${this.#where(offset)}: ${path}${reason}`, {
      kind: "malformed",
      offset,
    });
  }

  #fail(i: number, reason: string): never {
    this.#failAt(this.#base + (i - this.#start), reason);
  }

  #checkFamily(b: Uint8Array, s: number, e: number): void {
    this.#base = this.#messageOffset;
    this.#start = s;
    this.#checkMessage(b, s, e, METRIC_FAMILY, 1);
    this.#pathLength = 0;
    this.#messageIndex++;
  }

  /** Reads a varint at `i` into #value; returns the next index or an error code. */
  #varint(b: Uint8Array, i: number, e: number): number {
    let value = 0;
    let multiplier = 1;
    for (let n = 0; n < 10; n++) {
      if (i >= e) return VARINT_TRUNCATED;
      const c = b[i++]!;
      if (n === 9 && c > 1) return VARINT_MALFORMED;
      value += (c & 0x7f) * multiplier;
      multiplier *= 128;
      if (c < 0x80) {
        this.#value = value;
        return i;
      }
    }
    return VARINT_MALFORMED;
  }

  #readVarint(b: Uint8Array, i: number, e: number, what: string): number {
    const next = this.#varint(b, i, e);
    if (next === VARINT_TRUNCATED) this.#fail(i, `truncated ${what}`);
    if (next === VARINT_MALFORMED) this.#fail(i, `malformed ${what}`);
    return next;
  }

  #checkMessage(
    b: Uint8Array,
    s: number,
    e: number,
    spec: MessageSpec,
    depth: number,
  ): void {
    let seen = 0;
    let i = s;
    while (i < e) {
      const tagAt = i;
      let tag = b[i]!;
      if (tag < 0x80) {
        i++;
      } else {
        this.#pathLength = depth;
        i = this.#readVarint(b, i, e, "field tag");
        tag = this.#value;
      }
      const number = Math.floor(tag / 8);
      const wire = tag % 8;
      if (number === 0 || number > MAX_FIELD_NUMBER) {
        this.#fail(tagAt, `invalid field number ${number}`);
      }
      const field = spec.fields[number];
      if (field !== undefined && field.required) seen |= 1 << number;
      this.#names[depth] = field?.name;
      this.#pathLength = depth + 1;
      switch (wire) {
        case W_VARINT: {
          const at = i;
          i = this.#readVarint(b, i, e, "varint");
          if (field !== undefined) {
            if (field.kind === K_ENUM) {
              if (this.#value > field.enumMax) {
                this.#fail(at, `unknown enum value ${this.#value}`);
              }
            } else if (field.kind !== K_VARINT) {
              this.#wrongWire(tagAt, field, wire);
            }
          }
          break;
        }
        case W_I64:
          if (e - i < 8) this.#fail(i, "truncated 64-bit value");
          if (field !== undefined && field.kind !== K_I64) {
            this.#wrongWire(tagAt, field, wire);
          }
          i += 8;
          break;
        case W_I32:
          if (e - i < 4) this.#fail(i, "truncated 32-bit value");
          if (field !== undefined && field.kind !== K_I32) {
            this.#wrongWire(tagAt, field, wire);
          }
          i += 4;
          break;
        case W_LEN: {
          i = this.#readVarint(b, i, e, "length");
          const length = this.#value;
          if (length > e - i) {
            this.#fail(
              tagAt,
              `length ${length} runs past the end of the enclosing message (${e - i} bytes left)`,
            );
          }
          const end = i + length;
          if (field !== undefined) {
            this.#checkLen(b, i, end, field, tagAt, depth);
          }
          i = end;
          break;
        }
        case W_SGROUP:
        case W_EGROUP:
          this.#fail(tagAt, `unexpected group wire type in field ${number}`);
          break;
        default:
          this.#fail(tagAt, `invalid wire type ${wire} in field ${number}`);
      }
    }
    if ((seen & spec.requiredMask) !== spec.requiredMask) {
      this.#pathLength = depth;
      for (let n = 0; n < spec.fields.length; n++) {
        const field = spec.fields[n];
        if (field?.required && (seen & (1 << n)) === 0) {
          this.#fail(s, `missing required field ${field.name}`);
        }
      }
    }
  }

  #checkLen(
    b: Uint8Array,
    s: number,
    e: number,
    field: FieldSpec,
    tagAt: number,
    depth: number,
  ): void {
    switch (field.kind) {
      case K_STRING:
        if (!isValidUtf8(b, s, e)) this.#fail(s, "invalid UTF-8 in string");
        if (field.required && s === e) this.#fail(s, "must not be empty");
        return;
      case K_MESSAGE:
        this.#checkMessage(b, s, e, field.message!, depth + 1);
        return;
      case K_VARINT:
      case K_ENUM:
        if (!field.repeated) this.#wrongWire(tagAt, field, W_LEN);
        for (let i = s; i < e;) i = this.#readVarint(b, i, e, "packed varint");
        return;
      case K_I64:
        if (!field.repeated) this.#wrongWire(tagAt, field, W_LEN);
        if ((e - s) % 8 !== 0) {
          this.#fail(s, `packed 64-bit values of ${e - s} bytes`);
        }
        return;
      case K_I32:
        if (!field.repeated) this.#wrongWire(tagAt, field, W_LEN);
        if ((e - s) % 4 !== 0) {
          this.#fail(s, `packed 32-bit values of ${e - s} bytes`);
        }
        return;
    }
  }

  #wrongWire(at: number, field: FieldSpec, wire: number): never {
    this.#fail(
      at,
      `wire type ${wire} where ${KIND_NAMES[field.kind]} (wire type ${
        KIND_WIRE[field.kind]
      }) is expected`,
    );
  }
}
