/**
 * The coordinator's budgets: field sizes of a registration, bytes of the
 * registry, eviction of disconnected records, junk registrations, and the
 * per-source registration rate and stream cap. All on a fake clock.
 */

import assert from "node:assert/strict";
import { type ClientIdentity, CoordinatorError, createCoordinator } from "./coordinator.ts";
import { IDENTITY_LIMITS, identityBytes } from "./identity.ts";
import { parseFlags } from "../../lib/flags.ts";
import { PROXY_FLAGS, toProxyOptions } from "../settings.ts";

function identity(fqdn: string, extra: Partial<ClientIdentity> = {}): ClientIdentity {
  return { fqdn, labels: {}, version: "0.9.1", modules: [], protocol: "connect", ...extra };
}

function refusal(fn: () => unknown): CoordinatorError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof CoordinatorError, `expected CoordinatorError, got ${error}`);
    return error;
  }
  assert.fail("expected a refusal");
}

Deno.test("register() refuses each oversized PollRequest field, naming the field and the limit", () => {
  const coordinator = createCoordinator({ registrationTimeoutMs: 60_000 });
  const L = IDENTITY_LIMITS;
  const cases: [Partial<ClientIdentity>, RegExp][] = [
    [
      { version: "v".repeat(L.versionBytes + 1) },
      /version is 129 bytes, more than the limit of 128/,
    ],
    [{ version: "é".repeat(65) }, /version is 130 bytes/],
    [
      { labels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`l${i}`, "x"])) },
      /33 labels, more than the limit of 32/,
    ],
    [{ labels: { ["n".repeat(129)]: "x" } }, /label name is 129 bytes, more than the limit of 128/],
    [{ labels: { zone: "x".repeat(1025) } }, /label zone's value is 1025 bytes, more than .* 1024/],
    [{ modules: Array.from({ length: 257 }, (_, i) => `m${i}`) }, /257 modules, more .* 256/],
    [{ modules: ["m".repeat(129)] }, /module name is 129 bytes, more than the limit of 128/],
    [{ proxies: Array.from({ length: 33 }, () => "http://p:8080") }, /33 proxies, more .* 32/],
    [{ proxies: ["p".repeat(513)] }, /proxy entry is 513 bytes, more than the limit of 512/],
    [{ fqdn: "x".repeat(254) }, /fqdn is 254 bytes, more than the limit of 253/],
  ];
  for (const [extra, message] of cases) {
    const error = refusal(() => coordinator.register(identity("node1", extra)));
    assert.equal(error.kind, "invalid_identity");
    assert.match(error.message, message);
  }
  // At the limits, it passes.
  coordinator.register(identity("node1", {
    version: "v".repeat(L.versionBytes),
    labels: { zone: "x".repeat(L.labelValueBytes) },
    modules: ["m".repeat(L.moduleNameBytes)],
    proxies: ["p".repeat(L.proxyBytes)],
  })).close();
  assert.equal(coordinator.clientCount, 1);
});

Deno.test("register() refuses a registration larger than maxIdentityBytes in all", () => {
  const coordinator = createCoordinator({ registrationTimeoutMs: 60_000, maxIdentityBytes: 4096 });
  const labels = Object.fromEntries(
    Array.from({ length: 8 }, (_, i) => [`l${i}`, "x".repeat(500)]),
  );
  const error = refusal(() => coordinator.register(identity("node1", { labels })));
  assert.equal(error.kind, "invalid_identity");
  assert.match(error.message, /--registration\.max-identity-bytes \(4096\)/);
});

// Issue 10 item 4: a 1 MiB version used to be kept for every registration.
Deno.test("issue 10: a version of nearly 1 MiB is refused, not kept in the registry", () => {
  const coordinator = createCoordinator({ registrationTimeoutMs: 60_000 });
  const error = refusal(() =>
    coordinator.register(identity("a.db.example.com", { version: "x".repeat(1_000_000) }))
  );
  assert.equal(error.kind, "invalid_identity");
  assert.equal(coordinator.clientCount, 0);
  assert.equal(coordinator.registryBytes, 0);
});

Deno.test("registryBytes follows registrations, re-registrations and evictions", () => {
  let t = 0;
  const coordinator = createCoordinator({ registrationTimeoutMs: 1000, now: () => t });
  const a = identity("a", { labels: { zone: "eu" } });
  const session = coordinator.register(a);
  assert.equal(coordinator.registryBytes, identityBytes(a));
  const a2 = identity("a", { labels: { zone: "eu-west-1" }, modules: ["node"] });
  const again = coordinator.register(a2);
  assert.equal(coordinator.registryBytes, identityBytes(a2));
  session.close();
  again.close();
  t = 5000;
  assert.equal(coordinator.expire(), 1);
  assert.equal(coordinator.registryBytes, 0);
});

Deno.test("register() evicts disconnected records, oldest first, when the registry bytes are full", () => {
  let t = 0;
  const one = identityBytes(identity("c0"));
  const coordinator = createCoordinator({
    registrationTimeoutMs: 3_600_000,
    maxRegistryBytes: one * 3,
    now: () => t,
  });
  const c0 = coordinator.register(identity("c0"));
  const c1 = coordinator.register(identity("c1"));
  const c2 = coordinator.register(identity("c2"));
  t = 10;
  c1.close(); // disconnected first: the oldest
  t = 20;
  c0.close();
  const c3 = coordinator.register(identity("c3"));
  assert.deepEqual(coordinator.listClients().map((c) => c.fqdn), ["c0", "c2", "c3"]);
  const c4 = coordinator.register(identity("c4"));
  assert.deepEqual(coordinator.listClients().map((c) => c.fqdn), ["c2", "c3", "c4"]);
  // Only connected clients left: refused.
  const error = refusal(() => coordinator.register(identity("c5")));
  assert.equal(error.kind, "registry_full");
  assert.match(error.message, /--registry\.max-bytes/);
  for (const s of [c2, c3, c4]) s.close();
});

Deno.test("register() evicts disconnected records, oldest first, at maxClients too", () => {
  let t = 0;
  const coordinator = createCoordinator({
    registrationTimeoutMs: 3_600_000,
    maxClients: 2,
    now: () => t,
  });
  const a = coordinator.register(identity("a"));
  const b = coordinator.register(identity("b"));
  t = 10;
  a.close();
  // Old code: "a" held its place for the whole registration timeout.
  const c = coordinator.register(identity("c"));
  assert.deepEqual(coordinator.listClients().map((x) => x.fqdn), ["b", "c"]);
  assert.equal(refusal(() => coordinator.register(identity("d"))).kind, "too_many_clients");
  // A returning client is not evicted to make room for itself.
  c.close();
  const c2 = coordinator.register(identity("c"));
  assert.deepEqual(coordinator.listClients().map((x) => x.fqdn), ["b", "c"]);
  b.close();
  c2.close();
});

// Issue 10 item 7: junk registrations dropped at once held --clients.max places.
Deno.test("issue 10: registrations dropped at once do not hold --clients.max places", () => {
  let t = 0;
  const coordinator = createCoordinator({
    registrationTimeoutMs: 300_000,
    maxClients: 2,
    keepAfterMs: 15_000,
    now: () => t,
  });
  const keeper = coordinator.register(identity("keeper"));
  for (let i = 0; i < 10; i++) {
    t += 100;
    coordinator.register(identity(`junk${i}`)).close();
  }
  assert.deepEqual(coordinator.listClients().map((x) => x.fqdn), ["keeper"]);
  // A stream that lived past keepAfterMs, or was scraped, stays listed.
  t += 15_000;
  keeper.close();
  assert.deepEqual(coordinator.listClients().map((x) => x.fqdn), ["keeper"]);
  const scraped = coordinator.register(identity("scraped"));
  const stop = new AbortController();
  const waiting = coordinator.requestScrape(
    { host: "scraped", method: "GET", url: "http://scraped/metrics", headers: [], deadline: 1e12 },
    stop.signal,
  );
  stop.abort(new Error("done"));
  waiting.catch(() => {});
  scraped.close();
  assert.deepEqual(coordinator.listClients().map((x) => x.fqdn), ["keeper", "scraped"]);
  // A long-lived stream replaced by one that ends at once: the record stays.
  const old = coordinator.register(identity("restarted"));
  t += 20_000;
  const replacement = coordinator.register(identity("restarted"));
  old.close();
  replacement.close();
  assert.ok(coordinator.listClients().some((x) => x.fqdn === "restarted"));
});

Deno.test("register() limits registrations per source with a token bucket", () => {
  let t = 0;
  const coordinator = createCoordinator({
    registrationTimeoutMs: 60_000,
    registrationRatePerSource: 10,
    registrationBurstPerSource: 5,
    now: () => t,
  });
  for (let i = 0; i < 5; i++) {
    coordinator.register(identity(`n${i}`), { source: "10.0.0.1" }).close();
  }
  const error = refusal(() => coordinator.register(identity("n5"), { source: "10.0.0.1" }));
  assert.equal(error.kind, "rate_limited");
  assert.equal(error.retryAfterMs, 100);
  assert.match(error.message, /--registration\.rate-per-source/);
  // Other sources have their own budget; no source, no budget.
  coordinator.register(identity("other"), { source: "10.0.0.2" }).close();
  coordinator.register(identity("local")).close();
  t += 100;
  coordinator.register(identity("n5"), { source: "10.0.0.1" }).close();
});

Deno.test("register() caps connected streams per source; replacing one's own stream is not a new one", () => {
  const coordinator = createCoordinator({ registrationTimeoutMs: 60_000, maxClientsPerSource: 2 });
  const a = coordinator.register(identity("a"), { source: "s" });
  const b = coordinator.register(identity("b"), { source: "s" });
  const error = refusal(() => coordinator.register(identity("c"), { source: "s" }));
  assert.equal(error.kind, "too_many_from_source");
  assert.match(error.message, /s already has 2 connected clients \(--clients\.max-per-source\)/);
  const a2 = coordinator.register(identity("a"), { source: "s" }); // a restart
  a.close();
  coordinator.register(identity("c"), { source: "other" }).close();
  b.close();
  const c = coordinator.register(identity("c"), { source: "s" });
  a2.close();
  c.close();
});

Deno.test("with the default flags, 1,000 clients behind one NAT restarting at once all register", () => {
  const defaults = toProxyOptions(parseFlags(PROXY_FLAGS, [])).proxy;
  let t = 0;
  const coordinator = createCoordinator({
    registrationTimeoutMs: 300_000,
    maxClients: defaults.maxClients,
    maxClientsPerSource: defaults.maxClientsPerSource,
    maxRegistryBytes: defaults.maxRegistryBytes,
    maxIdentityBytes: defaults.maxIdentityBytes,
    registrationRatePerSource: defaults.registrationRatePerSource,
    registrationBurstPerSource: defaults.registrationBurstPerSource,
    keepAfterMs: 15_000,
    now: () => t,
  });
  const fleet = (round: number) =>
    Array.from({ length: 1000 }, (_, i) =>
      coordinator.register(
        identity(`node${i}.example.com`, { labels: { zone: "eu", round: String(round) } }),
        { source: "203.0.113.7" },
      ));
  const first = fleet(1);
  t += 60_000; // up for a minute, then every client restarts at once (new streams first)
  const second = fleet(2);
  for (const session of first) session.close();
  assert.equal(coordinator.listClients().filter((c) => c.connected).length, 1000);
  for (const session of second) session.close();
});
