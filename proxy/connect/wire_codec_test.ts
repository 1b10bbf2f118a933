import assert from "node:assert/strict";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  PollResponseSchema,
  type PushRequest,
  PushRequestSchema,
  PushResponseSchema,
  ScrapeRequestSchema,
  type ScrapeResponseHeadSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import { encodeEnvelope } from "./connect_stream.ts";
import { chunkData, chunkFrame } from "../../lib/http1_body.ts";
import {
  decodePushHead,
  encodePushResponse,
  encodeScrapeEnvelope,
  type PushHeadTexts,
  pushHeadTexts,
} from "./wire_codec.ts";
import { seededRandom as random } from "../../lib/testing/random.ts";

Deno.test("encodePushResponse() writes the bytes protobuf-es writes", () => {
  const next = random(7);
  const values = [0n, 1n, 127n, 128n, 16383n, 16384n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n];
  for (let i = 0; i < 5000; i++) {
    // Magnitudes from 1 byte to 2^64.
    values.push(BigInt.asUintN(64, BigInt(Math.floor(next() * 2 ** 32)) << BigInt(i % 33)));
  }
  for (const bytesRelayed of values) {
    assert.deepEqual(
      encodePushResponse({ bytesRelayed }),
      toBinary(PushResponseSchema, create(PushResponseSchema, { bytesRelayed })),
      String(bytesRelayed),
    );
  }
});

/** Strings of every kind protobuf-es must agree on: empty, ASCII, Latin-1, BMP, astral, lone surrogates, large. */
function randomString(next: () => number): string {
  const kind = Math.floor(next() * 10);
  if (kind === 0) return "";
  if (kind === 1) return "x".repeat(next() < 0.02 ? Math.floor(next() * 70_000) : 200);
  const length = Math.floor(next() * (kind === 2 ? 300 : 24));
  let text = "";
  for (let i = 0; i < length; i++) {
    const pick = next();
    if (kind < 5 || pick < 0.6) text += String.fromCharCode(0x20 + Math.floor(next() * 0x5f));
    else if (pick < 0.7) text += String.fromCharCode(0x80 + Math.floor(next() * 0x780));
    else if (pick < 0.8) text += String.fromCharCode(0x800 + Math.floor(next() * 0xd000));
    else if (pick < 0.9) text += String.fromCodePoint(0x10000 + Math.floor(next() * 0xfffff));
    else if (pick < 0.95) text += String.fromCharCode(0xd800 + Math.floor(next() * 0x800));
    else text += String.fromCharCode(Math.floor(next() * 0x20));
  }
  return text;
}

function randomHeaders(next: () => number): { name: string; value: string }[] {
  const headers = [];
  for (let i = Math.floor(next() * (next() < 0.02 ? 200 : 8)); i > 0; i--) {
    headers.push({ name: randomString(next), value: randomString(next) });
  }
  return headers;
}

function randomUint32(next: () => number): number {
  const kind = Math.floor(next() * 4);
  return kind === 0 ? 0 : kind === 1 ? 0xffffffff : Math.floor(next() * 2 ** (8 * kind + 8));
}

Deno.test("encodeScrapeEnvelope() writes the bytes protobuf-es writes", () => {
  const next = random(3);
  let ours = 0;
  for (let i = 0; i < 3000; i++) {
    const scrape: MessageInitShape<typeof ScrapeRequestSchema> = {
      id: randomString(next),
      method: next() < 0.8 ? "GET" : randomString(next),
      url: randomString(next),
      headers: randomHeaders(next),
      timeoutMs: randomUint32(next),
    };
    // Messages made by protobuf-es, some with unknown fields (left to protobuf-es).
    const made = next() < 0.1 ? create(ScrapeRequestSchema, scrape) : null;
    if (made !== null && next() < 0.5) {
      made.$unknown = [{ no: 9, wireType: 0, data: new Uint8Array([7]) }];
    }
    const message = { message: { case: "scrape" as const, value: made ?? scrape } };
    const expected = encodeEnvelope(
      0,
      toBinary(PollResponseSchema, create(PollResponseSchema, message)),
    );
    const actual = encodeScrapeEnvelope(message);
    if (actual !== null) ours++;
    assert.deepEqual(actual ?? expected, expected, JSON.stringify(scrape).slice(0, 500));
    // As one chunk of chunked transfer coding: the same bytes, framed.
    const chunk = encodeScrapeEnvelope(message, undefined, true);
    assert.equal(chunk === null, actual === null);
    if (chunk !== null) {
      assert.deepEqual(chunkData(chunk), expected);
      assert.deepEqual(chunk, chunkFrame(expected));
    }
    if (made?.$unknown === undefined) assert.notEqual(actual, null);
  }
  assert.ok(ours > 2500, `${ours} encoded by hand`);
  // Other messages are protobuf-es' business.
  assert.equal(encodeScrapeEnvelope({ message: { case: "heartbeat", value: {} } }), null);
  // Values protobuf-es refuses are left to it (it throws).
  const bad = { message: { case: "scrape" as const, value: { timeoutMs: 1.5 } } };
  assert.equal(encodeScrapeEnvelope(bad), null);
});

Deno.test("encodeScrapeEnvelope() with known fields: the same bytes, fields encoded once", () => {
  const next = random(5);
  const known = new WeakMap<object, Uint8Array>();
  for (let i = 0; i < 500; i++) {
    // (Typed as mutable, as the scrape handler hands them on.)
    const fields = randomHeaders(next).map((h) => Object.freeze({ ...h }) as typeof h);
    const frozen = Object.freeze([...fields]) as typeof fields;
    for (const headers of [frozen, frozen, [...fields]]) {
      const message = {
        message: {
          case: "scrape" as const,
          value: { id: randomString(next), method: "GET", url: randomString(next), headers },
        },
      };
      const expected = encodeEnvelope(
        0,
        toBinary(PollResponseSchema, create(PollResponseSchema, message)),
      );
      assert.deepEqual(encodeScrapeEnvelope(message, known), expected);
    }
    // Kept only for the frozen array of frozen fields.
    assert.ok(known.has(frozen));
    assert.ok(!known.has(fields));
  }
  // Fields that are not all frozen are encoded each time (they may change).
  const loose = Object.freeze([{ name: "a", value: "1" }]) as { name: string; value: string }[];
  const message = { message: { case: "scrape" as const, value: { id: "x", headers: loose } } };
  encodeScrapeEnvelope(message, known);
  assert.ok(!known.has(loose));
  loose[0]!.value = "22";
  const expected = encodeEnvelope(
    0,
    toBinary(PollResponseSchema, create(PollResponseSchema, message)),
  );
  assert.deepEqual(encodeScrapeEnvelope(message, known), expected);
});

function randomHead(next: () => number): MessageInitShape<typeof ScrapeResponseHeadSchema> {
  return {
    scrapeId: randomString(next),
    sessionId: randomString(next),
    status: next() < 0.7 ? 200 : randomUint32(next),
    headers: randomHeaders(next),
    error: next() < 0.7 ? "" : randomString(next),
  };
}

/** fromBinary's answer, or its error. */
function reference(bytes: Uint8Array): PushRequest | "error" {
  try {
    return fromBinary(PushRequestSchema, bytes);
  } catch {
    return "error";
  }
}

Deno.test("decodePushHead() decodes as protobuf-es does, and leaves the rest to it", () => {
  const next = random(5);
  let ours = 0;
  for (let i = 0; i < 3000; i++) {
    const head = randomHead(next);
    const bytes = toBinary(
      PushRequestSchema,
      create(PushRequestSchema, { message: { case: "head", value: head } }),
    );
    const decoded = decodePushHead(bytes);
    assert.notEqual(decoded, null);
    assert.deepEqual(decoded, fromBinary(PushRequestSchema, bytes));
    ours++;
    // Mutations: truncation, a flipped byte, an appended field (known,
    // unknown, the oneof again), invalid UTF-8. Whatever the hand decoder
    // accepts, protobuf-es must decode to the same message.
    const mutated = [...bytes];
    const what = Math.floor(next() * 5);
    const at = Math.floor(next() * mutated.length);
    if (what === 0) mutated.length = at;
    else if (what === 1) mutated[at] = Math.floor(next() * 256);
    else if (what === 2) {
      mutated.push(
        ...[[0x08, 0x01], [0x12, 0x00], [0x0a, 0x00], [0x48, 0x05]][Math.floor(next() * 4)]!,
      );
    } else if (what === 3) mutated.splice(at, 0, 0xff, 0xfe);
    else mutated[at] = mutated[at]! ^ (1 << Math.floor(next() * 8));
    const input = new Uint8Array(mutated);
    const mine = decodePushHead(input);
    const theirs = reference(input);
    if (mine !== null) assert.deepEqual(mine, theirs, JSON.stringify(mutated.slice(0, 200)));
  }
  // Body chunks and unknown fields are protobuf-es' business.
  assert.equal(decodePushHead(new Uint8Array([0x12, 0x01, 0x41])), null);
  const unknown = toBinary(
    PushRequestSchema,
    create(PushRequestSchema, { message: { case: "head", value: { scrapeId: "a" } } }),
  );
  assert.equal(decodePushHead(new Uint8Array([...unknown, 0x48, 0x05])), null);
  assert.ok(ours === 3000);
});

Deno.test("decodePushHead() with a connection's texts decodes as protobuf-es does", () => {
  const next = random(11);
  const texts = pushHeadTexts();
  for (let i = 0; i < 3000; i++) {
    // Heads that often repeat the last one's fields (as a client's do).
    const head = randomHead(random(Math.floor(next() * 4)));
    head.scrapeId = String(i);
    const bytes = toBinary(
      PushRequestSchema,
      create(PushRequestSchema, { message: { case: "head", value: head } }),
    );
    const reference = fromBinary(PushRequestSchema, bytes);
    assert.deepEqual(decodePushHead(bytes, texts), reference);
    assert.deepEqual(decodePushHead(bytes), reference);
    assert.ok(texts.slots === 32);
    for (let slot = 0; slot < texts.slots; slot++) {
      const text = texts.text(slot);
      assert.ok(text === undefined || text.length <= 4096);
    }
  }
});

Deno.test("decodePushHead() takes a kept text again for the same bytes, a new one else", () => {
  const texts = pushHeadTexts();
  const encode = (sessionId: string, value: string, error = ""): Uint8Array =>
    toBinary(
      PushRequestSchema,
      create(PushRequestSchema, {
        message: {
          case: "head",
          value: {
            scrapeId: "1",
            sessionId,
            status: 200,
            error,
            headers: [{ name: "date", value }],
          },
        },
      }),
    );
  const headOf = (bytes: Uint8Array, kept: PushHeadTexts | null = texts) => {
    const decoded = decodePushHead(bytes, kept);
    assert.ok(decoded !== null && decoded.message.case === "head");
    return decoded.message.value;
  };
  const long = "x".repeat(100);
  const first = headOf(encode(`session-${1}`, long + "a"));
  const again = headOf(encode(`session-${1}`, long + "a"));
  // (Strings are compared by value; the memo is seen in what it keeps.)
  assert.equal(again.sessionId, "session-1");
  assert.equal(texts.text(0), first.sessionId);
  const keptSession = texts.text(0);
  const keptValue = texts.text(3);
  assert.equal(keptValue, long + "a");
  headOf(encode("session-1", long + "a"));
  assert.ok(texts.text(0) === keptSession && texts.text(3) === keptValue);
  const other = headOf(encode("session-1", long + "b"));
  assert.equal(other.headers[0]!.value, long + "b");
  assert.equal(texts.text(3), long + "b");
  assert.equal(other.sessionId, "session-1");
  // Non-ASCII and long texts are decoded, never kept; nor the scrape id.
  const non = headOf(encode("séssion", "v", "é"));
  assert.equal(non.sessionId, "séssion");
  assert.equal(non.error, "é");
  assert.equal(texts.text(0), "session-1");
  assert.equal(texts.text(1), undefined);
  const huge = "h".repeat(5000);
  assert.equal(headOf(encode(huge, "v")).sessionId, huge);
  assert.equal(texts.text(0), "session-1");
  for (let slot = 0; slot < texts.slots; slot++) assert.notEqual(texts.text(slot), "1");
  // Without texts: nothing kept.
  assert.equal(headOf(encode("s", "v"), null).sessionId, "s");
  assert.equal(texts.text(0), "session-1");
});
