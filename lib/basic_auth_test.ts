import assert from "node:assert/strict";
import bcrypt from "bcryptjs";
import { createBasicAuthVerifier, parseBasicAuth, parseBearer, sha256Hex } from "./basic_auth.ts";

const users = new Map([["alice", bcrypt.hashSync("wonderland", 4)]]);

Deno.test("parseBasicAuth() reads user and password, and refuses other schemes", () => {
  assert.deepEqual(parseBasicAuth("Basic " + btoa("alice:a:b")), {
    user: "alice",
    password: "a:b",
  });
  assert.deepEqual(parseBasicAuth("basic " + btoa("u:")), { user: "u", password: "" });
  assert.equal(parseBasicAuth("Bearer abc"), null);
  assert.equal(parseBasicAuth("Basic !!!"), null);
  assert.equal(parseBasicAuth("Basic " + btoa("nocolon")), null);
  assert.equal(parseBasicAuth(undefined), null);
  assert.equal(parseBearer("Bearer abc.def"), "abc.def");
  assert.equal(parseBearer("Basic abc"), null);
});

Deno.test("createBasicAuthVerifier() checks bcrypt hashes and caches successes", async () => {
  const verifier = createBasicAuthVerifier();
  assert.equal(await verifier.verify(users, { user: "alice", password: "wonderland" }), null);
  assert.equal(
    await verifier.verify(users, { user: "alice", password: "wrong" }),
    "wrong_password",
  );
  assert.equal(
    await verifier.verify(users, { user: "bob", password: "wonderland" }),
    "unknown_user",
  );
  // A cached success does not survive a changed hash.
  const changed = new Map([["alice", bcrypt.hashSync("other", 4)]]);
  assert.equal(
    await verifier.verify(changed, { user: "alice", password: "wonderland" }),
    "wrong_password",
  );
  const started = performance.now();
  for (let i = 0; i < 100; i++) {
    assert.equal(await verifier.verify(users, { user: "alice", password: "wonderland" }), null);
  }
  assert.ok(performance.now() - started < 500, "cached checks are fast");
});

Deno.test("createBasicAuthVerifier() refuses checks beyond its concurrency", async () => {
  const verifier = createBasicAuthVerifier({ maxConcurrent: 1 });
  const slow = new Map([["alice", bcrypt.hashSync("x", 8)]]);
  const results = await Promise.all([
    verifier.verify(slow, { user: "alice", password: "y" }),
    verifier.verify(slow, { user: "alice", password: "z" }),
  ]);
  assert.deepEqual(results.sort(), ["busy", "wrong_password"]);
});

Deno.test("sha256Hex() matches sha256sum", () => {
  assert.equal(
    sha256Hex("test"),
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
  );
});

Deno.test("createBasicAuthVerifier(): cache hits never wait behind running checks", async () => {
  const verifier = createBasicAuthVerifier({ maxConcurrent: 1 });
  const slow = new Map([["alice", bcrypt.hashSync("wonderland", 10)]]);
  assert.equal(await verifier.verify(slow, { user: "alice", password: "wonderland" }), null);
  assert.ok(verifier.isCached(slow, { user: "alice", password: "wonderland" }));
  assert.ok(!verifier.isCached(slow, { user: "alice", password: "wrong" }));
  let slowDone = false;
  const running = verifier.verify(slow, { user: "alice", password: "wrong" })
    .finally(() => slowDone = true);
  assert.equal(await verifier.verify(slow, { user: "alice", password: "other" }), "busy");
  assert.equal(await verifier.verify(slow, { user: "alice", password: "wonderland" }), null);
  assert.equal(slowDone, false, "the cached check did not wait for bcrypt");
  assert.equal(await running, "wrong_password");
});

Deno.test("createBasicAuthVerifier(): the same credentials checked at once share one check", async () => {
  const verifier = createBasicAuthVerifier({ maxConcurrent: 1 });
  const slow = new Map([["alice", bcrypt.hashSync("wonderland", 8)]]);
  // Prometheus' first scrapes with new credentials all arrive at once.
  const results = await Promise.all(
    Array.from(
      { length: 20 },
      () => verifier.verify(slow, { user: "alice", password: "wonderland" }),
    ),
  );
  assert.deepEqual(new Set(results), new Set([null]));
});

Deno.test("createBasicAuthVerifier(): one source holds at most its share of the check slots", async () => {
  const verifier = createBasicAuthVerifier({ maxConcurrent: 4 });
  const slow = new Map([["alice", bcrypt.hashSync("wonderland", 8)]]);
  const attacker = ["a", "b", "c"].map((password) =>
    verifier.verify(slow, { user: "alice", password }, { source: "10.6.6.6" })
  );
  const legit = verifier.verify(
    slow,
    { user: "alice", password: "wonderland" },
    { source: "10.0.0.1" },
  );
  assert.deepEqual(await Promise.all(attacker), [
    "wrong_password",
    "wrong_password",
    "source_busy",
  ]);
  assert.equal(await legit, null);
});
