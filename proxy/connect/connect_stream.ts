/**
 * Framing of the Connect streaming protocol (binary codec) for the proxy's
 * fast path: 5-byte envelopes (flags, big-endian length) read from a request
 * body as it arrives, and envelopes and end-stream messages for responses.
 * Pure: works on any `AsyncIterable<Uint8Array>`, no I/O of its own. Errors
 * carry the codes and messages connect-es uses for the same faults.
 *
 * @module
 */

import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createEndStreamSerialization } from "@connectrpc/connect/protocol-connect";
import { type PushRequest, PushRequestSchema } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { errorMessage } from "../../lib/error_message.ts";
import { decodePushHead, type PushHeadTexts } from "./wire_codec.ts";
import { isOwned, markOwned, type PiecesAtHand, piecesAtHand } from "../../lib/owned_chunks.ts";

/** Envelope flag: the message is compressed. */
export const FLAG_COMPRESSED = 0x01;
/** Envelope flag: the end-stream message (JSON) of a response. */
export const FLAG_END_STREAM = 0x02;

/**
 * One envelope.
 *
 * @param flags The flags byte.
 * @param data The message.
 * @returns Header and message in one buffer.
 */
export function encodeEnvelope(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}

const endStream = createEndStreamSerialization(undefined);

/**
 * The end-stream envelope: `{}`, or `{"error":{…}}`, with trailers as
 * `metadata` — serialized by connect-es itself, so both paths agree.
 *
 * @param error The call's error, if it failed.
 * @param trailers Response trailers.
 * @returns The envelope.
 */
export function encodeEndStream(error: ConnectError | undefined, trailers: Headers): Uint8Array {
  return encodeEnvelope(
    FLAG_END_STREAM,
    endStream.serialize(
      error === undefined ? { metadata: trailers } : { metadata: trailers, error },
    ),
  );
}

/** The header of one envelope. */
export interface EnvelopeHeader {
  flags: number;
  /** Length of the message that follows. */
  length: number;
}

function incomplete(): ConnectError {
  return new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
}

/**
 * Reads envelopes from a byte stream. Bytes are handed out as views of the
 * chunks received; they are copied only when a read spans chunks.
 */
export class EnvelopeReader {
  readonly #source: AsyncIterator<Uint8Array>;
  /** The source, when it hands out pieces at hand without a promise. */
  readonly #sourceNow: PiecesAtHand | null;
  /** The source said it ended (through nextNow). */
  #sourceEnded = false;
  readonly #maxMessageBytes: number;
  /** Received, not yet read; the first may be partly read already. */
  #chunks: Uint8Array[] = [];
  /** Whether the first chunk was received marked as owned (lib/owned_chunks.ts). */
  #firstOwned = false;
  #buffered = 0;

  /**
   * @param source The request body.
   * @param maxMessageBytes Longer messages fail with ResourceExhausted.
   */
  constructor(source: AsyncIterable<Uint8Array>, maxMessageBytes: number) {
    this.#source = source[Symbol.asyncIterator]();
    this.#sourceNow = piecesAtHand(this.#source);
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** Pulls one more chunk; false at the end of the stream. */
  async #pull(): Promise<boolean> {
    if (this.#sourceEnded) return false;
    for (;;) {
      const next = await this.#source.next();
      if (next.done) return false;
      if (next.value.byteLength === 0) continue;
      this.#add(next.value);
      return true;
    }
  }

  #add(chunk: Uint8Array): void {
    if (this.#chunks.length === 0) this.#firstOwned = isOwned(chunk);
    this.#chunks.push(chunk);
    this.#buffered += chunk.byteLength;
  }

  /**
   * Pulls one more chunk when the source has one at hand (see
   * PiecesAtHand), without waiting: true when it did, false at the end of
   * the stream, undefined when only waiting can tell.
   */
  pullNow(): boolean | undefined {
    if (this.#sourceEnded) return false;
    const source = this.#sourceNow;
    if (source === null) return undefined;
    const piece = source.nextNow();
    if (piece === undefined || (piece !== null && piece.byteLength === 0)) return undefined;
    if (piece === null) {
      this.#sourceEnded = true;
      return false;
    }
    this.#add(piece);
    return true;
  }

  /** Waits until `n` bytes are buffered; false if the stream ends first. */
  async #fill(n: number): Promise<boolean> {
    while (this.#buffered < n) {
      if (!(await this.#pull())) return false;
    }
    return true;
  }

  /** `n` buffered bytes, contiguous (copied only when they span chunks). */
  #peek(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    if (first.byteLength >= n) return first.subarray(0, n);
    const out = new Uint8Array(n);
    let at = 0;
    for (const chunk of this.#chunks) {
      const take = Math.min(chunk.byteLength, n - at);
      out.set(chunk.subarray(0, take), at);
      at += take;
      if (at === n) break;
    }
    return out;
  }

  /** Drops `n` buffered bytes. */
  #skip(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const first = this.#chunks[0]!;
      if (first.byteLength <= n) {
        this.#chunks.shift();
        const next = this.#chunks[0];
        this.#firstOwned = next !== undefined && isOwned(next);
        n -= first.byteLength;
      } else {
        this.#chunks[0] = first.subarray(n);
        n = 0;
      }
    }
  }

  /** Bytes received and not read yet. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * The next envelope's header, or null at a clean end of the stream.
   * Refuses compressed and end-stream envelopes and messages over the limit.
   */
  async header(): Promise<EnvelopeHeader | null> {
    if (this.#buffered === 0 && !(await this.#pull())) return null;
    if (this.#buffered < 5 && !(await this.#fill(5))) throw incomplete();
    return this.headerNow();
  }

  /**
   * {@linkcode header} when its 5 bytes are buffered ({@linkcode buffered}),
   * without waiting: no promise made (issue #11).
   */
  headerNow(): EnvelopeHeader {
    // Read where they lie when in the first chunk (no view made for them).
    const first = this.#chunks[0]!;
    const bytes = first.byteLength >= 5 ? first : this.#peek(5);
    const flags = bytes[0]!;
    const length = ((bytes[1]! << 24) | (bytes[2]! << 16) | (bytes[3]! << 8) | bytes[4]!) >>> 0;
    this.#skip(5);
    if ((flags & FLAG_COMPRESSED) !== 0) {
      throw new ConnectError(
        "received compressed envelope, but do not know how to decompress",
        Code.Internal,
      );
    }
    if ((flags & FLAG_END_STREAM) !== 0) {
      throw new ConnectError("unexpected end flag", Code.InvalidArgument);
    }
    if (length > this.#maxMessageBytes) {
      throw new ConnectError(
        `message size ${length} is larger than configured readMaxBytes ${this.#maxMessageBytes}`,
        Code.ResourceExhausted,
      );
    }
    return { flags, length };
  }

  /** Exactly `n` bytes of the current message, contiguous. */
  async read(n: number): Promise<Uint8Array> {
    if (n === 0) return new Uint8Array(0);
    if (this.#buffered < n && !(await this.#fill(n))) throw incomplete();
    const bytes = this.#peek(n);
    this.#skip(n);
    return bytes;
  }

  /**
   * Up to `n` (> 0) bytes of the current message: a view of one received
   * chunk. When the view is the rest of a chunk received marked as owned
   * (the only view of its buffer), it is marked too: what came before it
   * in the buffer (envelope headers, messages decoded from copies) is
   * read, and nothing after it is left here.
   */
  async readSome(n: number): Promise<Uint8Array> {
    if (this.#buffered === 0 && !(await this.#pull())) throw incomplete();
    return this.readSomeNow(n);
  }

  /**
   * {@linkcode readSome} when bytes are buffered ({@linkcode buffered}),
   * without waiting.
   */
  readSomeNow(n: number): Uint8Array {
    const first = this.#chunks[0]!;
    const whole = first.byteLength <= n;
    const owned = whole && this.#firstOwned;
    const bytes = whole ? first : first.subarray(0, n);
    this.#skip(bytes.byteLength);
    return owned ? markOwned(bytes) : bytes;
  }

  /** Bytes of the first chunk received not read yet: contiguous with the last view read from it. */
  get contiguous(): number {
    return this.#chunks.length === 0 ? 0 : this.#chunks[0]!.byteLength;
  }

  /**
   * The next envelope's header when its 5 bytes are in the first chunk and
   * it is a plain message within the limit; null otherwise (then
   * {@linkcode header} reads it, with its errors). Consumes nothing.
   */
  peekPlainHeaderNow(): EnvelopeHeader | null {
    const first = this.#chunks[0];
    if (first === undefined || first.byteLength < 5 || first[0] !== 0) return null;
    const length = ((first[1]! << 24) | (first[2]! << 16) | (first[3]! << 8) | first[4]!) >>> 0;
    return length > this.#maxMessageBytes ? null : { flags: 0, length };
  }

  /**
   * Joins bytes of the first chunk to `piece`, the view
   * {@linkcode readSomeNow} (or this) just returned from that same chunk:
   * skips `skip`
   * bytes (framing the caller has read with {@linkcode peekNow}) and takes
   * up to `n` bytes after them, moving the shorter side over the skipped
   * bytes, in place. One piece instead of two from one read: one write to
   * relay, not two (a client's pieces straddle the proxy's reads when
   * bytes wait in the socket). Marked as owned when it ends the chunk, as
   * {@linkcode readSomeNow} would mark the second part.
   *
   * @returns The joined view; `piece` itself when the bytes do not follow it.
   */
  joinNow(piece: Uint8Array, skip: number, n: number): Uint8Array {
    const first = this.#chunks[0];
    const end = piece.byteOffset + piece.byteLength;
    if (
      first === undefined || first.buffer !== piece.buffer || first.byteOffset < end ||
      first.byteLength <= skip || n <= 0
    ) {
      return piece;
    }
    // Between the two: bytes read already (framing, or left behind by a join before).
    const gap = first.byteOffset - end + skip;
    const take = Math.min(n, first.byteLength - skip);
    const owned = skip + take === first.byteLength && this.#firstOwned;
    const before = piece.byteLength;
    const span = new Uint8Array(piece.buffer, piece.byteOffset, before + gap + take);
    let joined: Uint8Array;
    if (before <= take) {
      span.copyWithin(gap, 0, before);
      joined = span.subarray(gap);
    } else {
      span.copyWithin(before, before + gap);
      joined = span.subarray(0, before + take);
    }
    this.#skip(skip + take);
    return owned ? markOwned(joined) : joined;
  }

  /** Up to `n` bytes at the front, not consumed (fewer only at the end of the stream). */
  async peek(n: number): Promise<Uint8Array> {
    if (this.#buffered < n) await this.#fill(n);
    return this.peekNow(n);
  }

  /** Up to `n` buffered bytes at the front, not consumed, without waiting. */
  peekNow(n: number): Uint8Array {
    return this.#buffered === 0 ? new Uint8Array(0) : this.#peek(Math.min(n, this.#buffered));
  }

  /** Drops `n` bytes that {@linkcode peek} returned. */
  skip(n: number): void {
    this.#skip(n);
  }

  /** The next whole message, or null at a clean end of the stream. */
  async message(): Promise<Uint8Array | null> {
    const header = await this.header();
    return header === null ? null : await this.read(header.length);
  }
}

/**
 * Reads varint-prefixed `body_chunk` framing: tag 0x12 (field 2, bytes) and
 * a varint length that covers the rest of the message exactly.
 *
 * @returns The prefix length and the chunk's length, or null for any other shape.
 */
export function bodyChunkPrefix(
  bytes: Uint8Array,
  messageLength: number,
): { prefix: number; length: number } | null {
  if (bytes[0] !== 0x12) return null;
  let value = 0;
  for (let i = 1; i < bytes.length && i < 6; i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * 2 ** (7 * (i - 1));
    if ((byte & 0x80) === 0) {
      return i + 1 + value === messageLength ? { prefix: i + 1, length: value } : null;
    }
  }
  return null;
}

/**
 * The messages of a Push call. The first is decoded by decodePushHead (or protobuf-es); later
 * messages that are a lone `body_chunk` are passed on as views of the
 * received bytes, piece by piece as they arrive, without reassembly; any
 * other message is decoded whole.
 *
 * @param reader The request body's envelopes.
 * @param texts The connection's Push head texts (see pushHeadTexts), if it keeps them.
 * @returns The push messages; body chunks may be split at any byte.
 */
export function readPushRequests(
  reader: EnvelopeReader,
  texts: PushHeadTexts | null = null,
): PushRequests {
  return new PushRequests(reader, texts);
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * The messages of a Push call (see {@linkcode readPushRequests}), as an
 * iterator of plain async steps rather than an async generator; the Push
 * logic reads the body's pieces as bytes ({@linkcode nextBody}), with no
 * message made around each (issue #11: fewer promise hops per piece).
 * Read by one consumer, one step at a time; after a failure it reads as
 * ended.
 */
export class PushRequests implements AsyncIterableIterator<PushRequest> {
  readonly #reader: EnvelopeReader;
  readonly #texts: PushHeadTexts | null;
  #first = true;
  /** Bytes of the current `body_chunk` not read yet. */
  #left = 0;
  #ended = false;

  /**
   * @param reader The request body's envelopes.
   * @param texts The connection's Push head texts, if any.
   */
  constructor(reader: EnvelopeReader, texts: PushHeadTexts | null = null) {
    this.#reader = reader;
    this.#texts = texts;
  }

  [Symbol.asyncIterator](): PushRequests {
    return this;
  }

  /** The next message; body pieces as `bodyChunk` messages. */
  async next(): Promise<IteratorResult<PushRequest>> {
    const item = await this.nextBody();
    if (item === null) return DONE;
    return { done: false, value: item instanceof Uint8Array ? bodyChunk(item) : item };
  }

  /**
   * The next piece of a `body_chunk` as bytes, any other message decoded,
   * or null at the end of the call.
   */
  async nextBody(): Promise<Uint8Array | PushRequest | null> {
    if (this.#ended) return null;
    try {
      // Bytes at hand are read without waiting (no promise per step).
      const reader = this.#reader;
      if (this.#left > 0) {
        const piece = reader.buffered > 0
          ? reader.readSomeNow(this.#left)
          : await reader.readSome(this.#left);
        this.#left -= piece.byteLength;
        return this.#left === 0 ? this.#joinFollowing(piece) : piece;
      }
      const header = reader.buffered >= 5 ? reader.headerNow() : await reader.header();
      if (header === null) {
        this.#ended = true;
        return null;
      }
      if (!this.#first && header.length > 0) {
        const want = Math.min(header.length, 6);
        const front = reader.buffered >= want ? reader.peekNow(want) : await reader.peek(want);
        const chunk = bodyChunkPrefix(front, header.length);
        if (chunk !== null) {
          reader.skip(chunk.prefix);
          if (chunk.length === 0) return new Uint8Array(0);
          const piece = reader.buffered > 0
            ? reader.readSomeNow(chunk.length)
            : await reader.readSome(chunk.length);
          this.#left = chunk.length - piece.byteLength;
          return this.#left === 0 ? this.#joinFollowing(piece) : piece;
        }
      }
      this.#first = false;
      return decode(await reader.read(header.length), this.#texts);
    } catch (error) {
      this.#ended = true;
      throw error;
    }
  }

  /**
   * {@linkcode nextBody} for a piece of a `body_chunk` at hand (or the end
   * of the call), without waiting: undefined when only nextBody can tell
   * (a message's framing cut short, any other message, an envelope to
   * refuse); nothing of a message is consumed then.
   */
  nextBodyNow(): Uint8Array | null | undefined {
    if (this.#ended) return null;
    if (this.#first) return undefined;
    try {
      const reader = this.#reader;
      if (reader.buffered === 0) {
        const pulled = reader.pullNow();
        if (pulled === undefined) return undefined;
        if (!pulled) {
          this.#ended = true;
          return null;
        }
      }
      if (this.#left > 0) {
        const piece = reader.readSomeNow(this.#left);
        this.#left -= piece.byteLength;
        return this.#left === 0 ? this.#joinFollowing(piece) : piece;
      }
      const header = reader.peekPlainHeaderNow();
      if (header === null || header.length === 0) return undefined;
      const want = 5 + Math.min(header.length, 6);
      if (reader.contiguous < want) return undefined;
      const chunk = bodyChunkPrefix(reader.peekNow(want).subarray(5), header.length);
      // (None of its bytes at hand yet: nextBody waits for them.)
      if (chunk === null || chunk.length === 0 || reader.contiguous <= 5 + chunk.prefix) {
        return undefined;
      }
      reader.skip(5 + chunk.prefix);
      const piece = reader.readSomeNow(chunk.length);
      this.#left = chunk.length - piece.byteLength;
      return this.#left === 0 ? this.#joinFollowing(piece) : piece;
    } catch (error) {
      this.#ended = true;
      throw error;
    }
  }

  /**
   * `piece` ended its `body_chunk`: the `body_chunk`s that follow it in the
   * same received chunk, whole or begun, are joined to it (see
   * EnvelopeReader.joinNow), their framing read here as above.
   */
  #joinFollowing(piece: Uint8Array): Uint8Array {
    const reader = this.#reader;
    while (this.#left === 0) {
      const header = reader.peekPlainHeaderNow();
      if (header === null || header.length === 0) break;
      const want = 5 + Math.min(header.length, 6);
      if (reader.contiguous < want) break;
      const chunk = bodyChunkPrefix(reader.peekNow(want).subarray(5), header.length);
      if (chunk === null || chunk.length === 0) break;
      const before = piece.byteLength;
      const joined = reader.joinNow(piece, 5 + chunk.prefix, chunk.length);
      if (joined === piece) break;
      piece = joined;
      this.#left = chunk.length - (piece.byteLength - before);
    }
    return piece;
  }
}

function bodyChunk(value: Uint8Array): PushRequest {
  return { $typeName: "pushprox.v1.PushRequest", message: { case: "bodyChunk", value } };
}

function decode(bytes: Uint8Array, texts: PushHeadTexts | null): PushRequest {
  // The head our client sends, decoded by hand (as protobuf-es would;
  // into strings, no view of the bytes kept); anything else by
  // protobuf-es, from a copy: nothing decoded may keep a view of a buffer
  // whose body pieces are given back once relayed (see
  // EnvelopeReader.readSome).
  const head = decodePushHead(bytes, texts);
  if (head !== null) return head;
  try {
    return fromBinary(PushRequestSchema, bytes.slice());
  } catch (error) {
    throw new ConnectError(
      `cannot decode message ${PushRequestSchema.typeName} from binary: ${errorMessage(error)}`,
      Code.InvalidArgument,
    );
  }
}
