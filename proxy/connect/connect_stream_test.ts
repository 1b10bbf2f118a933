import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { endStreamFromJson } from "@connectrpc/connect/protocol-connect";
import { type PushRequest, PushRequestSchema } from "../../gen/pushprox/v1/pushprox_pb.ts";
import {
  bodyChunkPrefix,
  encodeEndStream,
  encodeEnvelope,
  EnvelopeReader,
  readPushRequests,
} from "./connect_stream.ts";

/** `bytes` split in two at `at`, delivered as separate chunks. */
async function* split(bytes: Uint8Array, ...at: number[]): AsyncGenerator<Uint8Array> {
  let from = 0;
  for (const cut of [...at, bytes.byteLength]) {
    yield bytes.slice(from, cut);
    from = cut;
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

async function collect(reader: EnvelopeReader): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (;;) {
    const message = await reader.message();
    if (message === null) return out;
    out.push(message.slice());
  }
}

async function pushes(source: AsyncIterable<Uint8Array>, max = 1 << 20): Promise<PushRequest[]> {
  const out: PushRequest[] = [];
  for await (const request of readPushRequests(new EnvelopeReader(source, max))) out.push(request);
  return out;
}

/** A push as a client sends it: head, then body chunks. */
function pushStream(body: Uint8Array[]): Uint8Array {
  const head = create(PushRequestSchema, {
    message: { case: "head", value: { scrapeId: "s1", sessionId: "x", status: 200 } },
  });
  return concat(
    encodeEnvelope(0, toBinary(PushRequestSchema, head)),
    ...body.map((value) =>
      encodeEnvelope(
        0,
        toBinary(
          PushRequestSchema,
          create(PushRequestSchema, { message: { case: "bodyChunk", value } }),
        ),
      )
    ),
  );
}

async function rejects(promise: Promise<unknown>, code: Code, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(error.code, code);
    assert.match(error.rawMessage, message);
    return true;
  });
}

Deno.test("EnvelopeReader reads messages split at every byte position", async () => {
  const stream = concat(
    encodeEnvelope(0, new Uint8Array([1, 2, 3])),
    encodeEnvelope(0, new Uint8Array(0)),
    encodeEnvelope(0, new Uint8Array([4, 5, 6, 7, 8, 9])),
  );
  for (let a = 0; a <= stream.byteLength; a++) {
    for (let b = a; b <= stream.byteLength; b++) {
      const got = await collect(new EnvelopeReader(split(stream, a, b), 100));
      assert.deepEqual(
        got.map((m) => [...m]),
        [[1, 2, 3], [], [4, 5, 6, 7, 8, 9]],
        `cut ${a},${b}`,
      );
    }
  }
});

Deno.test("EnvelopeReader refuses truncated, oversized, compressed and end-stream envelopes", async () => {
  const whole = encodeEnvelope(0, new Uint8Array(10));
  for (let cut = 1; cut < whole.byteLength; cut++) {
    await rejects(
      collect(new EnvelopeReader(split(whole.slice(0, cut)), 100)),
      Code.InvalidArgument,
      /^protocol error: incomplete envelope$/,
    );
  }
  await rejects(
    collect(new EnvelopeReader(split(whole), 9)),
    Code.ResourceExhausted,
    /^message size 10 is larger than configured readMaxBytes 9$/,
  );
  await rejects(
    collect(new EnvelopeReader(split(encodeEnvelope(1, new Uint8Array(3))), 100)),
    Code.Internal,
    /compressed envelope/,
  );
  await rejects(
    collect(new EnvelopeReader(split(encodeEnvelope(2, new Uint8Array(3))), 100)),
    Code.InvalidArgument,
    /^unexpected end flag$/,
  );
});

Deno.test("EnvelopeReader hands out views, not copies, of chunks holding a whole message", async () => {
  const chunk = encodeEnvelope(0, new Uint8Array([7, 8]));
  const reader = new EnvelopeReader(
    (async function* () {
      yield chunk;
    })(),
    100,
  );
  const message = await reader.message();
  assert.equal(message!.buffer, chunk.buffer);
});

Deno.test("readPushRequests: head decoded, body chunks as views, split at every position", async () => {
  const body = [new Uint8Array(200).fill(1), new Uint8Array([2, 3]), new Uint8Array(0)];
  const stream = pushStream(body);
  const expected = concat(...body);
  for (let a = 0; a <= stream.byteLength; a++) {
    const requests = await pushes(split(stream, a));
    assert.equal(requests[0]!.message.case, "head");
    assert.equal(
      requests[0]!.message.value && (requests[0]!.message.value as { scrapeId: string }).scrapeId,
      "s1",
    );
    const chunks = requests.slice(1).map((r) => {
      assert.equal(r.message.case, "bodyChunk");
      return r.message.value as Uint8Array;
    });
    assert.deepEqual(concat(...chunks), expected, `cut at ${a}`);
  }
});

Deno.test("readPushRequests decodes a body chunk with extra fields like protobuf-es", async () => {
  // Two body_chunk fields in one message: the last wins.
  const odd = new Uint8Array([0x12, 1, 9, 0x12, 2, 5, 6]);
  const stream = concat(pushStream([]), encodeEnvelope(0, odd));
  const requests = await pushes(split(stream));
  assert.deepEqual([...(requests[1]!.message.value as Uint8Array)], [5, 6]);
  // A head after the first message is passed on for the service to refuse.
  const twoHeads = concat(pushStream([]), pushStream([]));
  assert.equal((await pushes(split(twoHeads)))[1]!.message.case, "head");
});

Deno.test("readPushRequests refuses a body that stops mid-envelope and oversized chunks", async () => {
  const stream = pushStream([new Uint8Array(50)]);
  for (let cut = pushStream([]).byteLength + 1; cut < stream.byteLength; cut++) {
    await rejects(
      pushes(split(stream.slice(0, cut), cut - 1)),
      Code.InvalidArgument,
      /incomplete envelope/,
    );
  }
  await rejects(
    pushes(split(pushStream([new Uint8Array(60)])), 50),
    Code.ResourceExhausted,
    /^message size 62 is larger/,
  );
});

Deno.test("bodyChunkPrefix() accepts only a lone length-delimited field 2", () => {
  assert.deepEqual(bodyChunkPrefix(new Uint8Array([0x12, 3]), 5), { prefix: 2, length: 3 });
  assert.deepEqual(bodyChunkPrefix(new Uint8Array([0x12, 0x80, 1]), 131), {
    prefix: 3,
    length: 128,
  });
  assert.equal(bodyChunkPrefix(new Uint8Array([0x12, 3]), 6), null);
  assert.equal(bodyChunkPrefix(new Uint8Array([0x0a, 3]), 5), null);
  assert.equal(bodyChunkPrefix(new Uint8Array([0x12, 0x80]), 5), null);
});

Deno.test("encodeEndStream() writes the JSON connect-es reads back", () => {
  const ok = encodeEndStream(undefined, new Headers());
  assert.equal(ok[0], 2);
  assert.equal(new TextDecoder().decode(ok.subarray(5)), "{}");
  const failed = encodeEndStream(
    new ConnectError("replaced", Code.AlreadyExists),
    new Headers({ "x-a": "1" }),
  );
  const end = endStreamFromJson(failed.subarray(5));
  assert.equal(end.error?.code, Code.AlreadyExists);
  assert.equal(end.error?.rawMessage, "replaced");
  assert.equal(end.metadata.get("x-a"), "1");
  assert.deepEqual(JSON.parse(new TextDecoder().decode(failed.subarray(5))).error, {
    code: "already_exists",
    message: "replaced",
  });
});

Deno.test("EnvelopeReader.readSome marks a view owned only when it is the rest of an owned chunk", async () => {
  const { isOwned, markOwned } = await import("../../lib/owned_chunks.ts");
  // Two envelopes of 8 bytes each in one owned chunk, then one in an unmarked chunk.
  const a = concat(
    encodeEnvelope(0, new Uint8Array(8).fill(1)),
    encodeEnvelope(0, new Uint8Array(8).fill(2)),
  );
  const b = encodeEnvelope(0, new Uint8Array(8).fill(3));
  async function* source(): AsyncGenerator<Uint8Array> {
    yield markOwned(a);
    yield b;
  }
  const reader = new EnvelopeReader(source(), 1024);
  assert.equal((await reader.header())?.length, 8);
  // More of the chunk follows this message: not the only view left.
  const first = await reader.readSome(8);
  assert.deepEqual([...first], new Array(8).fill(1));
  assert.equal(isOwned(first), false);
  assert.equal((await reader.header())?.length, 8);
  // The rest of the owned chunk: owned.
  const second = await reader.readSome(8);
  assert.deepEqual([...second], new Array(8).fill(2));
  assert.equal(isOwned(second), true);
  // The rest of a chunk that was not owned: not owned.
  assert.equal((await reader.header())?.length, 8);
  const third = await reader.readSome(8);
  assert.deepEqual([...third], new Array(8).fill(3));
  assert.equal(isOwned(third), false);
  assert.equal(await reader.header(), null);
});

Deno.test("readPushRequests joins body chunks received together: one piece, moved in place", async () => {
  const { isOwned, markOwned } = await import("../../lib/owned_chunks.ts");
  const body = [
    new Uint8Array(100).fill(1),
    new Uint8Array(50).fill(2),
    new Uint8Array(300).fill(3),
  ];
  const stream = pushStream(body);
  // The head's envelope, the first chunk's envelope and prefix (tag, one-byte length), 40 bytes.
  const cut = pushStream([]).byteLength + 5 + 2 + 40;
  async function* source(): AsyncGenerator<Uint8Array> {
    yield stream.slice(0, cut);
    yield markOwned(stream.slice(cut));
  }
  const requests = readPushRequests(new EnvelopeReader(source(), 1 << 20));
  assert.equal(((await requests.nextBody()) as PushRequest).message.case, "head");
  const first = await requests.nextBody() as Uint8Array;
  assert.deepEqual([...first], new Array(40).fill(1));
  // The rest of the first chunk's data and both chunks after it: one view of the read.
  const rest = await requests.nextBody() as Uint8Array;
  assert.deepEqual(rest, concat(new Uint8Array(60).fill(1), body[1]!, body[2]!));
  assert.equal(isOwned(rest), true, "it ends the owned chunk");
  assert.equal(await requests.nextBody(), null);

  // Body chunks of random sizes, the stream cut at random: the same bytes, and at
  // most one piece from each chunk received.
  let seed = 11;
  const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  for (let round = 0; round < 300; round++) {
    const pieces = Array.from(
      { length: 1 + random(8) },
      () => new Uint8Array(1 + random(300)).fill(1 + random(250)),
    );
    const wire = pushStream(pieces);
    const cuts = Array.from({ length: random(6) }, () => random(wire.byteLength)).sort((a, b) =>
      a - b
    );
    const requests = await pushes(split(wire, ...cuts));
    const got = requests.slice(1).map((r) => r.message.value as Uint8Array);
    assert.deepEqual(concat(...got), concat(...pieces), `cuts ${cuts}`);
    assert.ok(got.length <= cuts.length + 1, `${got.length} pieces from ${cuts.length + 1} chunks`);
  }
});

/** Chunks handed out by `next`, or without a promise by `nextNow` when `atHand(i)` says so. */
class ChunksAtHand implements AsyncIterableIterator<Uint8Array> {
  #i = 0;
  constructor(readonly chunks: Uint8Array[], readonly atHand: (i: number) => boolean) {}
  [Symbol.asyncIterator](): ChunksAtHand {
    return this;
  }
  next(): Promise<IteratorResult<Uint8Array>> {
    const chunk = this.chunks[this.#i++];
    return Promise.resolve(
      chunk === undefined ? { done: true, value: undefined } : { done: false, value: chunk },
    );
  }
  nextNow(): Uint8Array | null | undefined {
    if (!this.atHand(this.#i)) return undefined;
    return this.chunks[this.#i++] ?? null;
  }
}

Deno.test("PushRequests.nextBodyNow: pieces at hand without a promise, the same bytes as nextBody", async () => {
  const body = [new Uint8Array(40).fill(1), new Uint8Array([2, 3]), new Uint8Array(30).fill(4)];
  const stream = pushStream(body);
  const expected = concat(...body);
  let taken = 0;
  for (let a = 1; a < stream.byteLength; a += 3) {
    for (let b = a + 1; b <= stream.byteLength; b += 5) {
      for (const pattern of [0, 1, 2]) {
        const source = new ChunksAtHand(
          [stream.slice(0, a), stream.slice(a, b), stream.slice(b)],
          (i) => pattern === 1 || (pattern === 2 && i % 2 === 0),
        );
        const requests = readPushRequests(new EnvelopeReader(source, 1 << 20));
        const head = await requests.nextBody();
        assert.ok(head !== null && !(head instanceof Uint8Array), `head at ${a}/${b}`);
        const pieces: Uint8Array[] = [];
        for (;;) {
          let piece = requests.nextBodyNow();
          if (piece !== undefined) taken++;
          else {
            const next = await requests.nextBody();
            assert.ok(!(next !== null && !(next instanceof Uint8Array)));
            piece = next;
          }
          if (piece === null) break;
          pieces.push(piece.slice());
        }
        assert.deepEqual(concat(...pieces), expected, `cut at ${a}/${b}, pattern ${pattern}`);
        assert.equal(requests.nextBodyNow(), null);
      }
    }
  }
  assert.ok(taken > 0);
});
