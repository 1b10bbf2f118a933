import assert from "node:assert/strict";
import { createAllowList, parseCidr } from "./cidr.ts";

Deno.test("parseCidr() reads networks and single addresses, refuses the rest", () => {
  assert.deepEqual(parseCidr("10.0.0.0/8"), { address: "10.0.0.0", prefix: 8, family: "ipv4" });
  assert.deepEqual(parseCidr("::1"), { address: "::1", prefix: 128, family: "ipv6" });
  for (const bad of ["10.0.0.0/33", "nonsense/8", "10.0.0.0/x", "", "fe80::/129"]) {
    assert.throws(() => parseCidr(bad), SyntaxError, bad);
  }
});

Deno.test("createAllowList() matches IPv4, IPv6 and IPv4-mapped peers", () => {
  const allowed = createAllowList([parseCidr("127.0.0.0/8"), parseCidr("fd00::/8")]);
  assert.equal(allowed("127.0.0.1"), true);
  assert.equal(allowed("::ffff:127.0.0.1"), true);
  assert.equal(allowed("fd12::1"), true);
  assert.equal(allowed("10.1.1.1"), false);
  assert.equal(allowed("::1"), false);
  assert.equal(allowed(undefined), false);
  assert.equal(createAllowList([])("127.0.0.1"), false);
});
