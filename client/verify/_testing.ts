/**
 * Test helpers: a tiny hand-written protobuf encoder for MetricFamily
 * messages and stream utilities.
 *
 * @private Internal code, does not follow semantic versioning.
 * @module
 */

const ENCODER = new TextEncoder();

/** The Content-Type of delimited protobuf expositions. */
export const PROTOBUF_CONTENT_TYPE =
  "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/** The Content-Type of OpenMetrics 1.0 expositions. */
export const OPENMETRICS_CONTENT_TYPE =
  "application/openmetrics-text; version=1.0.0; charset=utf-8";

/** The Content-Type of Prometheus text 0.0.4 expositions. */
export const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Concatenates byte arrays.
 *
 * @param parts The arrays.
 * @returns One array.
 */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Encodes an unsigned varint (up to 2^53).
 *
 * @param value The value.
 * @returns Its varint bytes.
 */
export function varint(value: number): Uint8Array {
  const out: number[] = [];
  let v = value;
  while (v >= 128) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Uint8Array.from(out);
}

/**
 * Encodes a field tag.
 *
 * @param field The field number.
 * @param wire The wire type.
 * @returns The tag bytes.
 */
export function tag(field: number, wire: number): Uint8Array {
  return varint(field * 8 + wire);
}

/**
 * Encodes a varint field.
 *
 * @param field The field number.
 * @param value The value.
 * @returns The field bytes.
 */
export function uintField(field: number, value: number): Uint8Array {
  return concat(tag(field, 0), varint(value));
}

/**
 * Encodes a double field.
 *
 * @param field The field number.
 * @param value The value.
 * @returns The field bytes.
 */
export function doubleField(field: number, value: number): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, value, true);
  return concat(tag(field, 1), bytes);
}

/**
 * Encodes a length-delimited field.
 *
 * @param field The field number.
 * @param payload The bytes, or a string encoded as UTF-8.
 * @returns The field bytes.
 */
export function lenField(field: number, payload: Uint8Array | string): Uint8Array {
  const bytes = typeof payload === "string" ? ENCODER.encode(payload) : payload;
  return concat(tag(field, 2), varint(bytes.length), bytes);
}

/**
 * Encodes a nested message field.
 *
 * @param field The field number.
 * @param parts The encoded fields of the nested message.
 * @returns The field bytes.
 */
export function messageField(field: number, ...parts: Uint8Array[]): Uint8Array {
  return lenField(field, concat(...parts));
}

/**
 * Prefixes each message with its varint length.
 *
 * @param messages Encoded messages.
 * @returns A delimited stream.
 */
export function delimited(...messages: Uint8Array[]): Uint8Array {
  return concat(...messages.flatMap((m) => [varint(m.length), m]));
}

/**
 * A label pair field of a Metric or Exemplar.
 *
 * @param name The label name.
 * @param value The label value.
 * @returns The field bytes.
 */
export function label(name: string, value: string): Uint8Array {
  return messageField(1, lenField(1, name), lenField(2, value));
}

/**
 * A counter MetricFamily with one metric per value.
 *
 * @param name The family name.
 * @param values Counter values.
 * @returns The encoded MetricFamily message (not delimited).
 */
export function counterFamily(name: string, values: number[]): Uint8Array {
  return concat(
    lenField(1, name),
    lenField(2, `Help for ${name}.`),
    uintField(3, 0),
    ...values.map((v, i) =>
      messageField(
        4,
        label("instance", `host-${i}`),
        messageField(
          3,
          doubleField(1, v),
          messageField(2, label("trace_id", "abc"), doubleField(2, v)),
          messageField(3, uintField(1, 1_700_000_000), uintField(2, 5)),
        ),
        uintField(6, 1_700_000_000_000),
      )
    ),
  );
}

/**
 * A histogram MetricFamily with classic buckets and a native part (spans,
 * packed sint64 deltas, packed doubles).
 *
 * @param name The family name.
 * @returns The encoded MetricFamily message (not delimited).
 */
export function histogramFamily(name: string): Uint8Array {
  return concat(
    lenField(1, name),
    uintField(3, 4),
    lenField(5, "seconds"),
    messageField(
      4,
      label("path", "/api/ü"),
      messageField(
        7,
        uintField(1, 10),
        doubleField(2, 1.5),
        messageField(3, uintField(1, 3), doubleField(2, 0.1)),
        messageField(3, uintField(1, 10), doubleField(2, Infinity)),
        uintField(5, 6), // sint32 schema 3, zigzag-encoded
        doubleField(6, 1e-128),
        uintField(7, 0),
        messageField(12, uintField(1, 0), uintField(2, 3)),
        lenField(13, Uint8Array.from([2, 1, 3])), // packed sint64 deltas
        lenField(14, new Uint8Array(16)), // packed doubles
        messageField(16, label("trace_id", "t"), doubleField(2, 0.2)),
      ),
    ),
  );
}

/**
 * A readable stream over the given chunks.
 *
 * @param chunks The chunks, in order.
 * @returns The stream.
 */
export function streamOf(...chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks);
}

/**
 * Reads a stream to the end.
 *
 * @param stream The stream.
 * @returns All bytes.
 */
export async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return concat(...parts);
}

/**
 * Compresses bytes with a CompressionStream.
 *
 * @param bytes The input.
 * @param format `gzip` or `deflate`.
 * @returns The compressed bytes.
 */
export async function compress(
  bytes: Uint8Array,
  format: CompressionFormat = "gzip",
): Promise<Uint8Array> {
  return await readAll(
    streamOf(bytes).pipeThrough(
      new CompressionStream(format) as unknown as TransformStream<
        Uint8Array,
        Uint8Array
      >,
    ),
  );
}
