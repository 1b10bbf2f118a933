/**
 * The legacy poll state machine alone, on a fake clock and fake timers, with
 * a real coordinator: sessions spanning polls, displacement, scrapes kept
 * for the next poll, the grace period and shutdown. No sockets.
 */

import assert from "node:assert/strict";
import { createNullLogger } from "../../lib/logger.ts";
import { type Coordinator, createCoordinator, type ScrapeReply } from "../core/coordinator.ts";
import {
  createLegacyPolls,
  type GraceTimers,
  type LegacyPolls,
  type LegacyPollsOptions,
  type LegacySession,
  type PollOutcome,
} from "./polls.ts";
import { createProxyMetrics, type ProxyMetrics } from "../core/metrics.ts";

const GRACE_MS = 10_000;

/** A clock and timers that move only when told to. */
class FakeClock implements GraceTimers {
  now = 1_000_000;
  #timers = new Map<number, { at: number; callback: () => void }>();
  #ids = 0;

  setTimeout(callback: () => void, ms: number): number {
    const id = ++this.#ids;
    this.#timers.set(id, { at: this.now + ms, callback });
    return id;
  }

  clearTimeout(id: unknown): void {
    this.#timers.delete(id as number);
  }

  /** Moves the clock on, firing the timers that fall due, in order. */
  tick(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.#timers].filter(([, t]) => t.at <= until)
        .sort(([, a], [, b]) => a.at - b.at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.now = due[1].at;
      due[1].callback();
    }
    this.now = until;
  }

  get pending(): number {
    return this.#timers.size;
  }
}

interface Setup {
  clock: FakeClock;
  coordinator: Coordinator;
  metrics: ProxyMetrics;
  polls: LegacyPolls;
  /** Opens (or reuses) the fqdn's session; fails the test on a refusal. */
  open(fqdn: string, credential?: string): LegacySession;
  /** Requests a scrape of `host` with `timeoutMs` left. */
  scrape(host: string, timeoutMs?: number): Promise<ScrapeReply>;
}

function setup(options: Partial<LegacyPollsOptions> = {}): Setup {
  const clock = new FakeClock();
  let ids = 0;
  const coordinator = createCoordinator({
    registrationTimeoutMs: 60_000,
    now: () => clock.now,
    newId: () => `id-${++ids}`,
  });
  const metrics = createProxyMetrics({
    clientCount: () => coordinator.clientCount,
    scrapesInFlight: () => coordinator.scrapesInFlight,
    defaultMetrics: false,
  });
  const polls = createLegacyPolls({
    coordinator,
    logger: createNullLogger(),
    metrics,
    sessionGraceMs: GRACE_MS,
    now: () => clock.now,
    timers: clock,
    ...options,
  });
  return {
    clock,
    coordinator,
    metrics,
    polls,
    open(fqdn, credential = "") {
      const opened = polls.open(fqdn, credential, "", "10.0.0.1:5000");
      assert.ok("session" in opened, `refused: ${JSON.stringify(opened)}`);
      return opened;
    },
    scrape(host, timeoutMs = 5_000) {
      const reply = coordinator.requestScrape(
        {
          host,
          method: "GET",
          url: `http://${host}/metrics`,
          headers: [],
          deadline: clock.now + timeoutMs,
        },
        new AbortController().signal,
      );
      reply.catch(() => {}); // a failed test must not end in an unhandled rejection
      return reply;
    },
  };
}

function connected(s: Setup, fqdn: string): boolean {
  return s.coordinator.listClients().some((c) => c.fqdn === fqdn && c.connected);
}

/** Lets the coordinator's promises settle. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("a held poll carries the next scrape, which may be pushed once", async () => {
  const s = setup();
  const legacy = s.open("node-a");
  const held = s.polls.hold(legacy);
  assert.equal(held.ready, false);
  const outcome = held.outcome(() => true);
  s.scrape("node-a", 5_000);
  s.clock.tick(1_000);
  const result = await outcome;
  assert.equal(result.kind, "scrape");
  assert.ok(result.kind === "scrape");
  assert.equal(result.task.id, "id-2");
  assert.equal(result.timeoutMs, 5_000);
  const entry = s.polls.sent("id-2");
  assert.ok(entry);
  assert.equal(entry.legacy, legacy);
  assert.equal(entry.method, "GET");
  assert.equal(s.polls.claim("id-2", entry), true);
  assert.equal(s.polls.claim("id-2", entry), false, "a second push is a duplicate");
  assert.equal(s.polls.sent("id-2"), undefined);
  s.polls.close();
});

Deno.test("successive polls share one session; a newer poll displaces the held one", async () => {
  const s = setup();
  const first = s.polls.hold(s.open("node-a"));
  const firstOutcome = first.outcome(() => true);
  const again = s.open("node-a");
  const second = s.polls.hold(again);
  assert.deepEqual(await firstOutcome, { kind: "displaced" });
  assert.equal(s.polls.sessionCount, 1);
  assert.equal(s.coordinator.listClients().length, 1);
  // The displaced poll's end does not start the grace period: a poll is held.
  assert.equal(s.clock.pending, 0);
  const secondOutcome = second.outcome(() => true);
  second.gone();
  assert.deepEqual(await secondOutcome, { kind: "gone" });
  s.polls.close();
});

Deno.test("a poll for an fqdn with another credential is refused with 403", () => {
  const s = setup();
  s.open("node-a", "alice");
  const refused = s.polls.open("node-a", "bob", "", "10.0.0.2:5000");
  assert.ok(!("session" in refused));
  assert.equal(refused.status, 403);
  assert.match(refused.message, /another credential/);
  s.polls.close();
});

Deno.test("a scrape a poll could not carry goes to the next poll", async () => {
  const s = setup();
  const legacy = s.open("node-a");
  const held = s.polls.hold(legacy);
  const outcome = held.outcome(() => false); // the connection is gone when the scrape comes
  s.scrape("node-a", 5_000);
  assert.deepEqual(await outcome, { kind: "gone" });
  assert.equal(s.polls.sent("id-2"), undefined, "not sent");
  s.clock.tick(2_000);
  const next = s.polls.hold(s.open("node-a"));
  assert.equal(next.ready, true);
  const result: PollOutcome = await next.outcome(() => true);
  assert.ok(result.kind === "scrape");
  assert.equal(result.task.id, "id-2");
  assert.equal(result.timeoutMs, 3_000, "its timeout counts from when it was taken");
  s.polls.close();
});

Deno.test("a kept scrape whose deadline passed is dropped, not carried", async () => {
  const s = setup();
  const held = s.polls.hold(s.open("node-a"));
  const outcome = held.outcome(() => false);
  s.scrape("node-a", 1_000);
  await outcome;
  s.clock.tick(1_000);
  const next = s.polls.hold(s.open("node-a"));
  assert.equal(next.ready, false);
  next.gone();
  assert.deepEqual(await next.outcome(() => true), { kind: "gone" });
  s.polls.close();
});

Deno.test("a session is closed a grace period after its last poll, unless it polls again", async () => {
  const s = setup();
  const held = s.polls.hold(s.open("node-a"));
  const outcome = held.outcome(() => true);
  held.gone();
  await outcome;
  const goneAt = s.clock.now;
  s.clock.tick(GRACE_MS - 1);
  assert.equal(s.polls.sessionCount, 1);
  assert.ok(connected(s, "node-a"));

  // A poll within the grace period keeps the session and stops the timer.
  const again = s.polls.hold(s.open("node-a"));
  assert.equal(s.clock.pending, 0);
  const againOutcome = again.outcome(() => true);
  again.gone();
  await againOutcome;
  const lastGoneAt = s.clock.now;
  s.clock.tick(GRACE_MS);
  assert.equal(s.polls.sessionCount, 0);
  const [client] = s.coordinator.listClients();
  assert.equal(client?.connected, false);
  assert.equal(client?.disconnectedAt, lastGoneAt, "disconnected since its last poll ended");
  assert.notEqual(lastGoneAt, goneAt);
  assert.equal(s.coordinator.listClients().length, 1, "listed until the registration timeout");
  s.polls.close();
});

Deno.test("a newer registration for the fqdn replaces the session", async () => {
  const s = setup();
  const held = s.polls.hold(s.open("node-a"));
  const outcome = held.outcome(() => true);
  s.coordinator.register({
    fqdn: "node-a",
    labels: {},
    version: "",
    modules: [],
    protocol: "connect",
  });
  assert.deepEqual(await outcome, { kind: "replaced" });
  assert.equal(s.polls.sessionCount, 0, "no longer offered to polls");
  s.clock.tick(GRACE_MS);
  assert.equal(s.clock.pending, 0);
  s.polls.close();
});

Deno.test("close wakes held polls, closes every session and fails their scrapes", async () => {
  const s = setup();
  const held = s.polls.hold(s.open("node-a"));
  const outcome = held.outcome(() => false);
  const other = s.open("node-b");
  const reply = s.scrape("node-b");
  await settle();
  s.polls.close();
  assert.deepEqual(await outcome, { kind: "shutdown" });
  assert.equal(s.polls.closed, true);
  assert.equal(s.polls.sessionCount, 0);
  assert.equal(s.clock.pending, 0, "no timer left behind");
  await assert.rejects(reply);
  assert.equal(other.session.fqdn, "node-b");
  assert.ok(!connected(s, "node-a") && !connected(s, "node-b"));
  s.polls.close(); // idempotent
});

Deno.test("a draining coordinator ends a held poll", async () => {
  const s = setup();
  const held = s.polls.hold(s.open("node-a"));
  const outcome = held.outcome(() => true);
  s.coordinator.drain();
  assert.deepEqual(await outcome, { kind: "draining" });
  s.polls.close();
});

Deno.test("registrations are counted, and limits answer with their own status", async () => {
  const s = setup();
  const limited = createLegacyPolls({
    coordinator: createCoordinator({ registrationTimeoutMs: 60_000, maxClients: 1 }),
    logger: createNullLogger(),
    metrics: s.metrics,
    timers: s.clock,
  });
  assert.ok("session" in limited.open("node-a", "", "", ""));
  const refused = limited.open("node-b", "", "", "");
  assert.ok(!("session" in refused));
  assert.equal(refused.status, 429);
  const text = await s.metrics.registry.metrics();
  assert.match(text, /pushprox_proxy_registrations_total 1\b/);
  assert.match(text, /pushprox_proxy_limit_hits_total\{limit="clients"\} 1\b/);
  limited.close();
  s.polls.close();
});
