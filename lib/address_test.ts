import assert from "node:assert/strict";
import { formatAddress, parseListenAddress } from "./address.ts";

Deno.test("parseListenAddress() reads Go-style addresses", () => {
  assert.deepEqual(parseListenAddress(":8080"), { hostname: "", port: 8080 });
  assert.deepEqual(parseListenAddress("127.0.0.1:0"), {
    hostname: "127.0.0.1",
    port: 0,
  });
  assert.deepEqual(parseListenAddress("[::1]:9369"), {
    hostname: "::1",
    port: 9369,
  });
  for (const bad of ["8080", "host", ":99999", "a:b", ""]) {
    assert.throws(() => parseListenAddress(bad), SyntaxError, bad);
  }
});

Deno.test("formatAddress() brackets IPv6", () => {
  assert.equal(formatAddress({ hostname: "::1", port: 1 }), "[::1]:1");
  assert.equal(
    formatAddress({ hostname: "127.0.0.1", port: 2 }),
    "127.0.0.1:2",
  );
});
