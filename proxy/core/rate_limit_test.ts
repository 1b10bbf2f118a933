import assert from "node:assert/strict";
import { createTokenBuckets, sourceKey } from "./rate_limit.ts";

Deno.test("createTokenBuckets(): a burst, then the rate; refunds up to the capacity", () => {
  let t = 0;
  const buckets = createTokenBuckets({ ratePerSecond: 2, burst: 3, now: () => t });
  assert.deepEqual([buckets.take("a"), buckets.take("a"), buckets.take("a")], [0, 0, 0]);
  assert.equal(buckets.take("a"), 500);
  assert.equal(buckets.peek("a"), 500);
  t = 500;
  assert.equal(buckets.take("a"), 0);
  assert.equal(buckets.take("b"), 0, "keys are independent");
  buckets.refund("a");
  assert.equal(buckets.take("a"), 0);
  t = 100_000;
  for (let i = 0; i < 3; i++) buckets.refund("a");
  assert.equal([0, 1, 2, 3].map(() => buckets.take("a")).filter((ms) => ms === 0).length, 3);
});

Deno.test("createTokenBuckets(): the number of keys stays bounded", () => {
  let t = 0;
  const buckets = createTokenBuckets({ ratePerSecond: 1, burst: 1, maxKeys: 100, now: () => t });
  for (let i = 0; i < 10_000; i++) {
    t++;
    buckets.take(`k${i}`);
  }
  assert.ok(buckets.size <= 100, `${buckets.size}`);
});

Deno.test("sourceKey(): IPv4 as is, IPv4-mapped as IPv4, IPv6 by its /64", () => {
  assert.equal(sourceKey("10.0.0.1"), "10.0.0.1");
  assert.equal(sourceKey("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(sourceKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(sourceKey("2001:db8:1:2::7"), "2001:db8:1:2::/64");
  assert.equal(sourceKey("2001:DB8::1"), "2001:db8:0:0::/64");
  assert.equal(sourceKey("::1"), "0:0:0:0::/64");
  assert.equal(sourceKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.equal(sourceKey(undefined), "unknown");
});
