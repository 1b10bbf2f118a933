import assert from "node:assert/strict";
import {
  declaredFieldLength,
  declaredLength,
  forwardableFields,
  forwardableHeaders,
  rawHeaderPairs,
} from "./headers.ts";

Deno.test("forwardableHeaders() drops hop-by-hop and proxy credentials", () => {
  const got = forwardableHeaders(rawHeaderPairs([
    "Accept",
    "text/plain",
    "Proxy-Authorization",
    "Basic c2VjcmV0",
    "Connection",
    "keep-alive, X-Private",
    "X-Private",
    "1",
    "Transfer-Encoding",
    "chunked",
    "Accept-Encoding",
    "gzip",
    "X-Dup",
    "a",
    "X-Dup",
    "b",
  ]));
  assert.deepEqual(got, [
    { name: "accept", value: "text/plain" },
    { name: "accept-encoding", value: "gzip" },
    { name: "x-dup", value: "a" },
    { name: "x-dup", value: "b" },
  ]);
});

Deno.test("declaredLength() reads one length, repeated or listed, and refuses conflicts", () => {
  assert.deepEqual(declaredLength([["Content-Type", "text/plain"]]), { length: null });
  assert.deepEqual(declaredLength([["Content-Length", "42"]]), { length: 42 });
  assert.deepEqual(declaredLength([["content-length", "7, 7"], ["CONTENT-LENGTH", "7"]]), {
    length: 7,
  });
  assert.match(
    (declaredLength([["content-length", "7"], ["content-length", "8"]]) as { problem: string })
      .problem,
    /conflicting Content-Length values 7 and 8/,
  );
  for (const bad of ["", "-1", "1e3", "0x10", "12 34", "9999999999999999"]) {
    assert.ok("problem" in declaredLength([["content-length", bad]]), bad);
  }
});

Deno.test("declaredFieldLength() reads fields as declaredLength() reads pairs", () => {
  const cases: [string, string][][] = [
    [["Content-Type", "text/plain"]],
    [["Content-Length", "42"]],
    [["content-length", "7, 7"], ["CONTENT-LENGTH", "7"]],
    [["content-length", "7"], ["content-length", "8"]],
    [["content-lengths", "x"], ["content-length", "3"]],
    ...["", "-1", "1e3", "0x10", "12 34", "9999999999999999"].map((
      bad,
    ): [string, string][] => [["content-length", bad]]),
  ];
  for (const pairs of cases) {
    const fields = pairs.map(([name, value]) => ({ name, value }));
    assert.deepEqual(declaredFieldLength(fields), declaredLength(pairs), JSON.stringify(pairs));
  }
});

Deno.test("forwardableFields() keeps what forwardableHeaders() keeps", () => {
  const lists = [
    [["Accept", "text/plain"], ["Host", "x"], ["X-Dup", "a"], ["x-dup", "b"], ["TE", "trailers"]],
    [["Connection", "keep-alive, X-Private"], ["X-Private", "1"], ["Accept", "*/*"]],
    [["Proxy-Authorization", "Basic c2VjcmV0"], ["Authorization", "Bearer t"]],
    [],
  ] as [string, string][][];
  for (const pairs of lists) {
    assert.deepEqual(
      forwardableFields(pairs.map(([name, value]) => ({ name, value }))),
      forwardableHeaders(pairs),
    );
  }
});
