import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  PollRequestSchema,
  PollResponseSchema,
  PushRequestSchema,
  ScrapeRequestSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import {
  decodePollResponse,
  decodePollResponseNow,
  encodePollRequest,
  encodePollRequestNow,
  encodePushHead,
  encodePushHeadNow,
  PushHeadEncoder,
  recentTexts,
} from "./pushprox_codec.ts";
import { seededRandom as random } from "../../lib/testing/random.ts";

function texts(next: () => number): () => string {
  const int = (n: number) => Math.floor(next() * n);
  const pieces = [
    () => "",
    () => "http://host.example:9100/metrics?x=1",
    () => String.fromCharCode(...Array.from({ length: int(40) }, () => 32 + int(95))),
    () => "é€😀中",
    () => "\ud800", // a lone surrogate
    () => "a\udc00b",
    () => "\u0000\u007f\u0080\u07ff\u0800\uffff",
    () => "\ufeffbom",
    () => "x".repeat(int(20000)),
    () => "é".repeat(int(3000)),
  ];
  return () => {
    let text = "";
    for (let i = int(3); i >= 0; i--) text += pieces[int(pieces.length)]!();
    return text;
  };
}

function uint32(next: () => number): number {
  const choices = [0, 1, 127, 128, 200, 504, 16383, 16384, 2 ** 21, 2 ** 28, 2 ** 32 - 1];
  return next() < 0.5
    ? choices[Math.floor(next() * choices.length)]!
    : Math.floor(next() * 2 ** 32);
}

function headers(next: () => number, text: () => string) {
  const list: { name: string; value: string }[] = [];
  for (let i = Math.floor(next() * 6); i > 0; i--) {
    const repeated = list.length > 0 && next() < 0.3;
    list.push({ name: repeated ? list[0]!.name : text(), value: text() });
  }
  return list;
}

function unknown(next: () => number) {
  return next() < 0.2
    ? {
      $unknown: [{ no: 6 + Math.floor(next() * 100), wireType: 0, data: new Uint8Array([1]) }],
    }
    : {};
}

/** Decodes with both; both throw, or both give the same message. */
async function sameDecoding(bytes: Uint8Array, what: string): Promise<void> {
  let expected: unknown;
  try {
    expected = fromBinary(PollResponseSchema, bytes);
  } catch (error) {
    assert.equal(decodePollResponseNow(bytes), null, what);
    await assert.rejects(() => decodePollResponse(bytes), Error, `${what}: ${error}`);
    return;
  }
  assert.deepStrictEqual(await decodePollResponse(bytes), expected, what);
}

Deno.test("decodePollResponse() equals protobuf-es's fromBinary over randomized messages", async () => {
  const next = random(11);
  const text = texts(next);
  for (let i = 0; i < 3000; i++) {
    const kind = next();
    const message = kind < 0.7
      ? create(PollResponseSchema, {
        message: {
          case: "scrape",
          value: {
            id: text(),
            method: next() < 0.5 ? "GET" : text(),
            url: text(),
            headers: headers(next, text),
            timeoutMs: uint32(next),
            ...unknown(next),
          },
        },
      })
      : kind < 0.8
      ? create(PollResponseSchema, {
        message: {
          case: "registered",
          value: { sessionId: text(), heartbeatIntervalMs: uint32(next) },
        },
      })
      : kind < 0.9
      ? create(PollResponseSchema, { message: { case: "heartbeat", value: {} } })
      : create(PollResponseSchema, { message: { case: "goAway", value: { reason: text() } } });
    if (next() < 0.1) Object.assign(message, unknown(next));
    const bytes = toBinary(PollResponseSchema, message);
    await sameDecoding(bytes, `message ${i}`);
    // Damaged copies: a byte changed, cut short, or a field repeated.
    const damaged = bytes.slice();
    if (damaged.byteLength > 0) {
      damaged[Math.floor(next() * damaged.byteLength)] = Math.floor(next() * 256);
    }
    await sameDecoding(damaged, `message ${i}, a byte changed`);
    await sameDecoding(
      bytes.subarray(0, Math.floor(next() * bytes.byteLength)),
      `message ${i}, cut`,
    );
    const twice = new Uint8Array(bytes.byteLength * 2);
    twice.set(bytes);
    twice.set(bytes, bytes.byteLength);
    await sameDecoding(twice, `message ${i}, twice`);
  }
});

Deno.test("decodePollResponse() equals fromBinary for fields out of order, repeated and non-minimal", async () => {
  const field = (tag: number, ...bytes: number[]) => [tag, ...bytes];
  const text = (tag: number, value: string) => {
    const b = new TextEncoder().encode(value);
    return [tag, b.byteLength, ...b];
  };
  const scrape = (...fields: number[][]) => {
    const inner = fields.flat();
    return new Uint8Array([0x12, inner.length, ...inner]);
  };
  const header = [0x22, 6, ...text(0x0a, "a"), ...text(0x12, "b")];
  const cases = [
    scrape(field(0x28, 5), text(0x1a, "http://h/"), text(0x0a, "one"), text(0x0a, "two")),
    scrape(header, header, text(0x12, "GET")),
    scrape([0x22, 8, ...text(0x0a, "a"), ...text(0x0a, "c"), ...text(0x12, "b")].slice(0, 8)),
    scrape(field(0x28, 0x80, 0x80, 0x80, 0x80, 0x00)), // a non-minimal zero
    scrape(field(0x28, 0xff, 0xff, 0xff, 0xff, 0x0f)), // 2^32 - 1
    scrape(field(0x28, 0xff, 0xff, 0xff, 0xff, 0x1f)), // more than 32 bits
    scrape(field(0x2a, 0)), // field 5 as bytes
    scrape(text(0x0a, "\u00e9")),
    scrape(),
    new Uint8Array([0x12, 0x80, 0x00]), // a non-minimal length
    new Uint8Array([0x12]),
    new Uint8Array([]),
    new Uint8Array([0x12, 2, 0x0a, 0xc3]),
    new Uint8Array([0x12, 3, 0x0a, 1, 0xff]), // not UTF-8
  ];
  for (const [i, bytes] of cases.entries()) await sameDecoding(bytes, `case ${i}`);
});

Deno.test("encodePushHead() writes the bytes of protobuf-es's toBinary over randomized heads", async () => {
  const next = random(7);
  const text = texts(next);
  for (let i = 0; i < 3000; i++) {
    const head = {
      scrapeId: text(),
      sessionId: next() < 0.2 ? "" : text(),
      status: next() < 0.8 ? 200 + Math.floor(next() * 400) : uint32(next),
      headers: headers(next, text),
      error: next() < 0.7 ? "" : text(),
    };
    const expected = toBinary(
      PushRequestSchema,
      create(PushRequestSchema, { message: { case: "head", value: head } }),
    );
    assert.deepStrictEqual(await encodePushHead(head), expected, `head ${i}`);
    // Written behind free bytes, into a buffer given when it fits, else a new one.
    const into = new Uint8Array(512).fill(0xee);
    const placed = encodePushHeadNow(head, 20, into);
    if (placed !== null) {
      assert.deepStrictEqual(placed.slice(), expected, `placed head ${i}`);
      assert.equal(placed.byteOffset, 20);
      assert.equal(placed.buffer === into.buffer, 20 + expected.byteLength <= 512);
      if (placed.buffer === into.buffer) assert.equal(into[19], 0xee);
    }
  }
  // Fields left out, and values protobuf-es refuses.
  assert.deepStrictEqual(await encodePushHead({}), new Uint8Array([0x0a, 0]));
  assert.deepStrictEqual(
    await encodePushHead({ headers: [{ name: "x" }] }),
    toBinary(
      PushRequestSchema,
      create(PushRequestSchema, { message: { case: "head", value: { headers: [{ name: "x" }] } } }),
    ),
  );
  await assert.rejects(() => encodePushHead({ status: -1 }));
  await assert.rejects(() => encodePushHead({ status: 2 ** 32 }));
});

Deno.test("PushHeadEncoder writes protobuf-es's bytes for heads alike and heads that change", () => {
  const next = random(11);
  const text = texts(next);
  const encoder = new PushHeadEncoder();
  const frozen = (list: { name: string; value: string }[]) =>
    Object.freeze(list.map((header) => Object.freeze(header))) as { name: string; value: string }[];
  let fields = frozen(headers(next, text));
  let sessionId = text();
  let status = 200;
  let error = "";
  for (let i = 0; i < 2000; i++) {
    // Mostly the same fields (the same frozen list) with a new scrape id.
    const change = next();
    if (change < 0.05) fields = frozen(headers(next, text));
    else if (change < 0.08) sessionId = next() < 0.3 ? "" : text();
    else if (change < 0.11) status = uint32(next);
    else if (change < 0.14) error = next() < 0.5 ? "" : text();
    // A list not frozen, with the same content: never taken for the kept one.
    const list = next() < 0.1 ? fields.map((h) => ({ ...h })) : fields;
    const head = { scrapeId: next() < 0.05 ? "" : text(), sessionId, status, headers: list, error };
    const expected = toBinary(
      PushRequestSchema,
      create(PushRequestSchema, { message: { case: "head", value: head } }),
    );
    const into = new Uint8Array(512).fill(0xee);
    const placed = encoder.encode(head, 20, into);
    assert.notEqual(placed, null, `head ${i}`);
    assert.deepStrictEqual(placed!.slice(), expected, `head ${i}`);
    assert.equal(placed!.byteOffset, 20);
    if (placed!.buffer === into.buffer) assert.equal(into[19], 0xee);
  }
  // What the hand coder leaves to protobuf-es is left to it here too.
  assert.equal(encoder.encode({ scrapeId: "x", status: -1, headers: fields }), null);
});

Deno.test("decodePollResponse() decodes what the proxy sends as protobuf-es does", async () => {
  const request = create(ScrapeRequestSchema, {
    id: "42",
    method: "GET",
    url: "http://node.example:9100/metrics",
    headers: [{ name: "accept", value: "text/plain" }, {
      name: "x-prometheus-scrape-timeout-seconds",
      value: "10",
    }],
    timeoutMs: 10000,
  });
  const bytes = toBinary(
    PollResponseSchema,
    create(PollResponseSchema, { message: { case: "scrape", value: request } }),
  );
  const decoded = await decodePollResponse(bytes);
  assert.deepStrictEqual(decoded.message, { case: "scrape", value: request });
});

Deno.test("decodePollResponseNow() takes a field's text again only for the same bytes", () => {
  const recent = recentTexts();
  const decode = (url: string, headers: [string, string][]) => {
    const request = create(ScrapeRequestSchema, {
      id: "1",
      method: "GET",
      url,
      headers: headers.map(([name, value]) => ({ name, value })),
    });
    const bytes = toBinary(
      PollResponseSchema,
      create(PollResponseSchema, { message: { case: "scrape", value: request } }),
    );
    const decoded = decodePollResponseNow(bytes, recent);
    const expected = fromBinary(PollResponseSchema, bytes);
    assert.deepStrictEqual(decoded, expected);
    return decoded!.message.value as { url: string; headers: { name: string; value: string }[] };
  };
  const first = decode("http://h:9100/metrics", [["accept", "text/plain"], ["a", "1"]]);
  const again = decode("http://h:9100/metrics", [["accept", "text/plain"], ["a", "1"]]);
  assert.equal(again.url, first.url);
  // Same lengths, other bytes; headers moved to other slots; non-ASCII: decoded anew.
  assert.equal(decode("http://h:9100/metricz", [["a", "1"]]).url, "http://h:9100/metricz");
  assert.deepEqual(
    decode("http://h:9100/metrics", [["b", "2"], ["accept", "text/plaim"]]).headers,
    [
      { $typeName: "pushprox.v1.Header", name: "b", value: "2" },
      { $typeName: "pushprox.v1.Header", name: "accept", value: "text/plaim" },
    ],
  );
  const bytes = toBinary(
    PollResponseSchema,
    create(PollResponseSchema, {
      message: { case: "scrape", value: { url: "http://h:9100/metric\u00e9" } },
    }),
  );
  assert.equal(decodePollResponseNow(bytes), null);
  // Long text (decoded natively): the same string again for the same bytes;
  // a byte above 0x7f (invalid UTF-8 here) is left to protobuf-es.
  const long = "a".repeat(100);
  assert.equal(decode(`http://h:9100/${long}`, []).url, `http://h:9100/${long}`);
  const url = decode(`http://h:9100/${long}`, []).url;
  assert.equal(decode(`http://h:9100/${long}`, []).url, url);
  const raw = new Uint8Array([0x12, 102, 0x1a, 100, ...new Uint8Array(100).fill(0x61)]);
  assert.equal((decodePollResponseNow(raw, recent)!.message.value as { url: string }).url, long);
  raw[50] = 0xff;
  assert.equal(decodePollResponseNow(raw, recent), null);
});

Deno.test("the usual messages never need protobuf-es (a plain client does not load it)", () => {
  // What a proxy sends and a client writes on a healthy stream: if one of
  // these fell back, every client would load protobuf-es again (issue #11).
  const sent = [
    create(PollResponseSchema, {
      message: {
        case: "registered",
        value: { sessionId: "4f1c2a", heartbeatIntervalMs: 15000 },
      },
    }),
    create(PollResponseSchema, { message: { case: "heartbeat", value: {} } }),
    create(PollResponseSchema, {
      message: { case: "goAway", value: { reason: "proxy shutting down" } },
    }),
    create(PollResponseSchema, {
      message: {
        case: "scrape",
        value: {
          id: "17",
          url: "http://node.example:9100/metrics",
          headers: [{ name: "accept", value: "text/plain" }],
          timeoutMs: 10000,
        },
      },
    }),
  ];
  for (const message of sent) {
    const bytes = toBinary(PollResponseSchema, message);
    assert.deepStrictEqual(decodePollResponseNow(bytes), message, message.message.case);
  }
  assert.notEqual(
    encodePollRequestNow({
      fqdn: "node.example",
      labels: { env: "prod" },
      version: "1.0.0",
      modules: ["node"],
      proxies: ["http://proxy.example:8080/"],
    }),
    null,
  );
  assert.notEqual(
    encodePushHeadNow({
      scrapeId: "17",
      sessionId: "4f1c2a",
      status: 200,
      headers: [{ name: "content-type", value: "text/plain; version=0.0.4" }],
    }),
    null,
  );
});

Deno.test("encodePollRequest() writes the bytes of protobuf-es's toBinary over randomized requests", async () => {
  const next = random(5);
  const text = texts(next);
  const list = () => Array.from({ length: Math.floor(next() * 4) }, text);
  for (let i = 0; i < 2000; i++) {
    const labels: Record<string, string> = {};
    for (let k = Math.floor(next() * 5); k > 0; k--) {
      labels[next() < 0.2 ? String(Math.floor(next() * 100)) : text()] = text();
    }
    const request = {
      fqdn: next() < 0.1 ? "" : text(),
      labels,
      version: next() < 0.2 ? "" : text(),
      modules: list(),
      proxies: list(),
      modulesOnly: next() < 0.5,
      ...unknown(next),
    };
    const expected = toBinary(PollRequestSchema, create(PollRequestSchema, request));
    assert.deepStrictEqual(await encodePollRequest(request), expected, `request ${i}`);
  }
  assert.deepStrictEqual(await encodePollRequest({}), new Uint8Array(0));
});

Deno.test("decodePollResponseNow() with a stream's memo equals fromBinary for scrapes alike and changed", () => {
  const next = random(23);
  const text = texts(next);
  const ascii = () =>
    String.fromCharCode(
      ...Array.from({ length: 1 + Math.floor(next() * 30) }, () => 32 + Math.floor(next() * 95)),
    );
  const recent = recentTexts();
  const scrape = () => ({
    method: next() < 0.8 ? "GET" : next() < 0.5 ? ascii() : text(),
    url: next() < 0.8 ? `http://h.example:9100/${ascii()}` : text(),
    headers: next() < 0.8
      ? [{ name: "accept", value: ascii() }, {
        name: "x-prometheus-scrape-timeout-seconds",
        value: "10",
      }]
      : headers(next, text),
    timeoutMs: next() < 0.8 ? 10000 : uint32(next),
  });
  // Where the bytes after a message's leading id field start, if it has one.
  const tailAt = (b: Uint8Array): number | null => {
    const varint = (at: number): [number, number] => {
      let value = 0;
      for (let shift = 0;; shift += 7) {
        const byte = b[at++] ?? 0;
        value += (byte & 0x7f) * 2 ** shift;
        if (byte < 0x80) return [value, at];
      }
    };
    const [, at] = varint(1);
    if (b[at] !== 0x0a) return null;
    const [length, start] = varint(at + 1);
    return start + length;
  };
  // The fields but the timeout, as one value per change; the last message
  // decoded as it was made, with an id: its generation.
  let fields = scrape();
  let generation = 0;
  let last: { generation: number; headers: unknown } | null = null;
  let taken = 0;
  for (let i = 0; i < 4000; i++) {
    const change = next();
    if (change < 0.05) {
      fields = scrape();
      generation++;
    } else if (change < 0.12) {
      fields = { ...fields, timeoutMs: next() < 0.2 ? 0 : next() < 0.5 ? 9999 : uint32(next) };
    }
    const id = next() < 0.03 ? "" : next() < 0.05 ? text() : String(i * 7919 % 100003);
    let bytes = toBinary(
      PollResponseSchema,
      create(PollResponseSchema, { message: { case: "scrape", value: { id, ...fields } } }),
    );
    const damaged = next() < 0.1;
    if (damaged) {
      // Any single byte changed (after the id field, mostly).
      bytes = bytes.slice();
      const idEnd = tailAt(bytes) ?? 0;
      const from = next() < 0.8 && idEnd < bytes.byteLength ? idEnd : 0;
      bytes[from + Math.floor(next() * (bytes.byteLength - from))] = Math.floor(next() * 256);
    }
    let expected: unknown = null;
    try {
      expected = fromBinary(PollResponseSchema, bytes);
    } catch {
      // Both decoders leave it to protobuf-es, which throws.
    }
    const without = decodePollResponseNow(bytes);
    const withMemo = decodePollResponseNow(bytes, recent);
    assert.deepStrictEqual(withMemo, without, `message ${i}`);
    if (without !== null) assert.deepStrictEqual(without, expected, `message ${i}`);
    else if (expected === null) assert.equal(withMemo, null, `message ${i}`);
    if (withMemo === null || withMemo.message.case !== "scrape") continue;
    const value = withMemo.message.value;
    if (damaged || id === "") {
      last = null;
      continue;
    }
    // Messages alike but for their id and timeout share the last one's
    // frozen header list.
    if (last !== null && last.generation === generation) {
      assert.equal(value.headers, last.headers, `message ${i}: shared headers`);
      taken++;
    }
    assert.ok(Object.isFrozen(value.headers), `message ${i}: frozen headers`);
    last = { generation, headers: value.headers };
  }
  assert.ok(taken > 1000, `${taken} messages taken from the memo`);
});
