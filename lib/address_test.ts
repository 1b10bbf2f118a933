import assert from "node:assert/strict";
import { formatAddress, parseListenAddress, peerAddress } from "./address.ts";

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

Deno.test("peerAddress() formats IPv4, IPv6 and IPv4-mapped peers", () => {
  assert.equal(peerAddress({ remoteAddress: "10.0.0.5", remotePort: 51234 }), "10.0.0.5:51234");
  assert.equal(peerAddress({ remoteAddress: "2001:db8::5", remotePort: 1 }), "[2001:db8::5]:1");
  assert.equal(peerAddress({ remoteAddress: "::ffff:127.0.0.1", remotePort: 80 }), "127.0.0.1:80");
  assert.equal(peerAddress({}), "");
});
