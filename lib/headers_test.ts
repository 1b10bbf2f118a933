import assert from "node:assert/strict";
import { forwardableHeaders, rawHeaderPairs } from "./headers.ts";

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
