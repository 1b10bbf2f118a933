import assert from "node:assert/strict";
import { authorityProblem } from "./authority.ts";

Deno.test("authorityProblem accepts host names, IPv4 and [IPv6] with optional ports", () => {
  for (
    const good of [
      "localhost",
      "localhost:8080",
      "proxy.example.com",
      "proxy.example.com.",
      "node_1.example.com:443",
      "127.0.0.1",
      "127.0.0.1:0",
      "10.0.0.255:65535",
      "[::1]",
      "[::1]:8080",
      "[2001:db8::1]:443",
      "host:",
      "a-b.c-d",
    ]
  ) {
    assert.equal(authorityProblem(good), null, good);
  }
});

Deno.test("authorityProblem refuses what the issue's reproductions sent, with a reason", () => {
  for (
    const bad of [
      undefined,
      "",
      "[",
      "%",
      "#",
      "?",
      "\\",
      "a:b:c",
      "x:abc",
      ":80",
      "1.2.3.4.5",
      "1.2.3",
      "0x7f.1",
      "a.0x1f",
      "256.1.1.1",
      "01.1.1.1",
      "a..b",
      ".a",
      "a b",
      "a%41",
      "user@host",
      "host:65536",
      "host:123456",
      "[::1",
      "[::1]x",
      "[fe80::1%25eth0]",
      "[not-ipv6]",
      "é.com",
      "xn--e.com",
      "a".repeat(64) + ".com",
      "a.".repeat(130) + "com",
    ]
  ) {
    const problem = authorityProblem(bad);
    assert.equal(typeof problem, "string", String(bad));
    assert.match(problem!, /Host/, String(bad));
  }
});

Deno.test("authorityProblem answers the same for an authority seen before (its memo of usable ones)", () => {
  for (let round = 0; round < 2; round++) {
    assert.equal(authorityProblem("localhost:9100"), null);
    assert.notEqual(authorityProblem("a:b:c"), null);
    assert.notEqual(authorityProblem("[::1"), null);
  }
  // More usable authorities than the memo holds: still the same answers.
  for (let i = 0; i < 600; i++) assert.equal(authorityProblem(`host${i}.example.com:${i}`), null);
  assert.equal(authorityProblem("localhost:9100"), null);
  assert.notEqual(authorityProblem("host:65536"), null);
});
