/**
 * The session registry alone, on a fake clock and with plain stream
 * objects: listing, expiry, budgets and eviction, without the coordinator's
 * scrape hand-off.
 */

import assert from "node:assert/strict";
import { CoordinatorError } from "./coordinator_error.ts";
import { identityBytes } from "./identity.ts";
import {
  type ClientIdentity,
  createSessionRegistry,
  type RegisteredStream,
  type RegistryEvent,
  type SessionRegistry,
  type SessionRegistryOptions,
} from "./sessions.ts";

function identity(fqdn: string): ClientIdentity {
  return { fqdn, labels: {}, version: "1.0.0", modules: [], protocol: "connect" };
}

function setup(options: Partial<SessionRegistryOptions> = {}) {
  let clock = 1_000_000;
  const events: RegistryEvent[] = [];
  let ids = 0;
  const registry: SessionRegistry<RegisteredStream> = createSessionRegistry({
    registrationTimeoutMs: 60_000,
    now: () => clock,
    emit: (event) => events.push(event),
    ...options,
  });
  /** Registers `fqdn` the way the coordinator does: admit, then attach. */
  function connect(fqdn: string, credential = "", source = "") {
    const admission = registry.admit(identity(fqdn), credential, source);
    const stream: RegisteredStream = { id: `s${++ids}`, source };
    registry.attach(admission.record, stream);
    return { ...admission, stream };
  }
  return {
    registry,
    events,
    connect,
    tick(ms: number) {
      clock += ms;
    },
    get now() {
      return clock;
    },
  };
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

Deno.test("admit() and attach() list a client; detach() keeps it listed until the timeout", () => {
  const t = setup();
  const { record, previous } = t.connect("node-a");
  assert.equal(previous, null);
  assert.deepEqual(t.registry.list().map((c) => [c.fqdn, c.connected]), [["node-a", true]]);
  assert.equal(t.registry.count, 1);

  t.tick(5_000);
  t.registry.detach(record, record.session!);
  assert.deepEqual(t.events, [{ kind: "disconnected", fqdn: "node-a", at: t.now }]);
  const listed = t.registry.list()[0]!;
  assert.equal(listed.connected, false);
  assert.equal(listed.disconnectedAt, t.now);

  t.tick(59_999);
  assert.equal(t.registry.expire(), 0, "still within the registration timeout");
  t.tick(1);
  assert.equal(t.registry.count, 0, "no longer listed");
  assert.equal(t.registry.expire(), 1);
  assert.deepEqual(t.events.at(-1), { kind: "forgotten", fqdn: "node-a" });
  assert.equal(t.registry.lookup("node-a"), undefined);
  assert.equal(t.registry.bytes, 0);
});

Deno.test("detach() ignores a stream that is not the open one, and honours lastSeen", () => {
  const t = setup();
  const first = t.connect("node-a");
  const second = t.connect("node-a");
  assert.equal(second.previous, first.stream, "the new stream replaces the old one");
  t.registry.detach(second.record, first.stream);
  assert.equal(t.registry.list()[0]!.connected, true);
  t.registry.detach(second.record, second.stream, t.now - 3_000);
  assert.equal(t.registry.list()[0]!.disconnectedAt, t.now - 3_000);
  t.registry.detach(second.record, second.stream);
  assert.equal(t.events.length, 1, "a second detach is a no-op");
});

Deno.test("lookup() finds a record in any letter case, with or without a trailing dot", () => {
  const t = setup();
  const { record } = t.connect("Node-A.example");
  assert.equal(t.registry.lookup("node-a.example."), record);
  assert.equal(t.registry.lookup("NODE-A.EXAMPLE"), record);
});

Deno.test("admit() refuses another credential while connected, not after", () => {
  const t = setup();
  const { record, stream } = t.connect("node-a", "token:a");
  assert.equal(refusal(() => t.connect("node-a", "token:b")).kind, "credential_mismatch");
  t.registry.detach(record, stream);
  assert.equal(t.connect("node-a", "token:b").record.credential, "token:b");
});

Deno.test("admit() refuses an oversized identity", () => {
  const t = setup({ maxIdentityBytes: 10 });
  assert.equal(refusal(() => t.connect("node-a")).kind, "invalid_identity");
  assert.equal(t.registry.count, 0);
});

Deno.test("admit() evicts the longest-disconnected records first when full", () => {
  const t = setup({ maxClients: 2 });
  const a = t.connect("a");
  const b = t.connect("b");
  assert.equal(refusal(() => t.connect("c")).kind, "too_many_clients");
  t.registry.detach(b.record, b.stream);
  t.tick(1);
  t.registry.detach(a.record, a.stream);
  t.connect("c");
  assert.deepEqual(t.registry.list().map((c) => c.fqdn), ["a", "c"], "b went first");
  assert.deepEqual(t.events.at(-1), { kind: "forgotten", fqdn: "b" });
  // A returning client keeps its own record.
  t.connect("a");
  assert.deepEqual(t.registry.list().map((c) => c.fqdn), ["a", "c"]);
});

Deno.test("admit() refuses when the registry's bytes are spent", () => {
  const bytes = identityBytes(identity("a"));
  const t = setup({ maxRegistryBytes: bytes * 2 });
  t.connect("a");
  t.connect("b");
  assert.equal(t.registry.bytes, bytes * 2);
  const error = refusal(() => t.connect("c"));
  assert.equal(error.kind, "registry_full");
  assert.match(error.message, /--registry\.max-bytes/);
});

Deno.test("admit() caps connected streams per source; a replacement from the same source passes", () => {
  const t = setup({ maxClientsPerSource: 1 });
  const a = t.connect("a", "", "10.0.0.1");
  assert.equal(refusal(() => t.connect("b", "", "10.0.0.1")).kind, "too_many_from_source");
  t.connect("b", "", "10.0.0.2");
  const again = t.connect("a", "", "10.0.0.1");
  assert.equal(again.previous, a.stream);
  t.registry.detach(again.record, again.stream);
  t.connect("c", "", "10.0.0.1");
});

Deno.test("admit() rate-limits registrations per source and says when to retry", () => {
  const t = setup({ registrationRatePerSource: 1, registrationBurstPerSource: 2 });
  t.connect("a", "", "s");
  t.connect("b", "", "s");
  const error = refusal(() => t.connect("c", "", "s"));
  assert.equal(error.kind, "rate_limited");
  assert.ok(error.retryAfterMs > 0 && error.retryAfterMs <= 1_000, String(error.retryAfterMs));
  t.connect("c", "", "other");
  t.tick(1_000);
  t.connect("c", "", "s");
});

Deno.test("detach() forgets a short-lived, never scraped record at once with keepAfterMs", () => {
  const t = setup({ keepAfterMs: 10_000 });
  const brief = t.connect("brief");
  t.tick(1_000);
  t.registry.detach(brief.record, brief.stream);
  assert.equal(t.registry.lookup("brief"), undefined);
  assert.deepEqual(t.events.map((e) => e.kind), ["disconnected", "forgotten"]);

  const lived = t.connect("lived");
  t.tick(10_000);
  t.registry.detach(lived.record, lived.stream);
  assert.ok(t.registry.lookup("lived") !== undefined, "it lived past keepAfterMs");

  const scraped = t.connect("scraped");
  scraped.record.useful = true; // what the coordinator sets on a scrape
  t.registry.detach(scraped.record, scraped.stream);
  assert.ok(t.registry.lookup("scraped") !== undefined);
});

Deno.test("info() copies the record as listed", () => {
  const t = setup();
  const { record } = t.connect("node-a");
  const info = t.registry.info(record);
  assert.equal(info.connected, true);
  assert.equal(info.disconnectedAt, 0);
  assert.deepEqual(info.proxies, []);
  assert.deepEqual(info.recentScrapes, []);
  assert.notEqual(info.recentScrapes, record.recent);
});
