import assert from "node:assert/strict";
import {
  type AbortHook,
  type ClientIdentity,
  type Coordinator,
  CoordinatorError,
  createCoordinator,
  type ScrapeReply,
} from "./coordinator.ts";

function identity(
  fqdn: string,
  labels: Record<string, string> = {},
): ClientIdentity {
  return { fqdn, labels, version: "test", modules: [], protocol: "connect" };
}

function setup(): { coordinator: Coordinator; clock: { t: number } } {
  const clock = { t: 1_000_000 };
  let n = 0;
  const coordinator = createCoordinator({
    registrationTimeoutMs: 60_000,
    now: () => clock.t,
    newId: () => `id-${++n}`,
  });
  return { coordinator, clock };
}

function scrapeInput(host: string, deadline = 1_010_000) {
  return {
    host,
    method: "GET",
    url: `http://${host}:9100/metrics`,
    headers: [],
    deadline,
  };
}

async function* chunks(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield new TextEncoder().encode(part);
}

async function readAll(reply: ScrapeReply): Promise<string> {
  let text = "";
  for await (const chunk of reply.body) text += new TextDecoder().decode(chunk);
  return text;
}

function kindOf(error: unknown): string {
  assert.ok(
    error instanceof CoordinatorError,
    `expected CoordinatorError, got ${error}`,
  );
  return error.kind;
}

Deno.test("requestScrape() fails at once for an unknown client and keeps no state", async () => {
  const { coordinator } = setup();
  const error = await coordinator.requestScrape(
    scrapeInput("nobody"),
    new AbortController().signal,
  )
    .catch((e) => e);
  assert.equal(kindOf(error), "unknown_client");
  assert.match(error.message, /"nobody"/);
  assert.equal(coordinator.scrapesInFlight, 0);
  assert.equal(coordinator.clientCount, 0);
});

Deno.test("a scrape travels to the client and its pushed body back", async () => {
  const { coordinator, clock } = setup();
  const session = coordinator.register(identity("Node1.Example.com"));
  const replyPromise = coordinator.requestScrape(
    scrapeInput("node1.example.com"),
    new AbortController().signal,
  );
  clock.t += 2_000;
  const task = await session.next(new AbortController().signal);
  assert.ok(task);
  assert.equal(task.url, "http://node1.example.com:9100/metrics");
  assert.equal(
    task.timeoutMs,
    8_000,
    "time left is computed when the task is taken",
  );
  assert.equal(coordinator.scrapesInFlight, 1);
  assert.equal(coordinator.listClients()[0]!.inFlight, 1);

  const pushed = coordinator.acceptPush(
    {
      scrapeId: task.id,
      sessionId: session.id,
      status: 200,
      headers: [],
      error: "",
    },
    chunks("a 1\n", "b 2\n"),
  );
  const reply = await replyPromise;
  assert.equal(reply.status, 200);
  assert.equal(await readAll(reply), "a 1\nb 2\n");
  reply.settle();
  await pushed;
  assert.equal(coordinator.scrapesInFlight, 0);
  assert.equal(coordinator.listClients()[0]!.inFlight, 0);
  assert.equal(coordinator.listClients()[0]!.lastScrape, 1_000_000);
});

Deno.test("several scrapes to one client are handed out concurrently", async () => {
  const { coordinator } = setup();
  const session = coordinator.register(identity("h"));
  const signal = new AbortController().signal;
  const replies = [1, 2, 3].map(() => coordinator.requestScrape(scrapeInput("h"), signal));
  const tasks = [
    await session.next(signal),
    await session.next(signal),
    await session.next(signal),
  ];
  assert.deepEqual(tasks.map((t) => t?.id), ["id-2", "id-3", "id-4"]);
  // Answer in reverse order: each reply reaches its own scrape.
  const pushes = tasks.reverse().map((t, i) =>
    coordinator.acceptPush(
      {
        scrapeId: t!.id,
        sessionId: session.id,
        status: 200 + i,
        headers: [],
        error: "",
      },
      chunks(),
    )
  );
  const statuses = [];
  for (const reply of await Promise.all(replies)) {
    statuses.push(reply.status);
    reply.settle();
  }
  await Promise.all(pushes);
  assert.deepEqual(statuses, [202, 201, 200]);
});

Deno.test("acceptPush() refuses unknown, foreign and duplicate pushes", async () => {
  const { coordinator } = setup();
  const a = coordinator.register(identity("a"));
  const b = coordinator.register(identity("b"));
  const signal = new AbortController().signal;
  const reply = coordinator.requestScrape(scrapeInput("a"), signal);
  const task = (await a.next(signal))!;
  const head = {
    scrapeId: task.id,
    sessionId: a.id,
    status: 200,
    headers: [],
    error: "",
  };

  assert.equal(
    kindOf(
      await coordinator.acceptPush({ ...head, scrapeId: "guess" }, chunks())
        .catch((e) => e),
    ),
    "unknown_scrape",
  );
  assert.equal(
    kindOf(
      await coordinator.acceptPush({ ...head, sessionId: b.id }, chunks())
        .catch((e) => e),
    ),
    "foreign_scrape",
  );
  // The foreign attempt did not disturb the real scrape.
  const pushed = coordinator.acceptPush(head, chunks("ok"));
  assert.equal(
    kindOf(await coordinator.acceptPush(head, chunks()).catch((e) => e)),
    "duplicate_push",
  );
  const r = await reply;
  assert.equal(await readAll(r), "ok");
  r.settle();
  await pushed;
});

Deno.test("aborting a scrape withdraws it and frees its state", async () => {
  const { coordinator } = setup();
  const session = coordinator.register(identity("h"));
  const controller = new AbortController();
  const reply = coordinator.requestScrape(scrapeInput("h"), controller.signal);
  controller.abort(new Error("prometheus went away"));
  await assert.rejects(reply, /prometheus went away/);
  assert.equal(coordinator.scrapesInFlight, 0);
  // The withdrawn scrape is not sent to the client.
  const next = new AbortController();
  setTimeout(() => next.abort(), 10);
  assert.equal(await session.next(next.signal), null);
});

Deno.test("an abort hook stands for a listener on the signal while the scrape waits", async () => {
  const { coordinator } = setup();
  const session = coordinator.register(identity("h"));
  // Told through the hook: withdrawn, rejected with the signal's reason.
  const controller = new AbortController();
  const hook: AbortHook = { fire: null };
  const reply = coordinator.requestScrape(
    { ...scrapeInput("h"), abortHook: hook },
    controller.signal,
  );
  assert.equal(typeof hook.fire, "function");
  controller.abort(new Error("prometheus went away"));
  // No listener of the coordinator's on the signal: nothing happened yet.
  assert.equal(coordinator.scrapesInFlight, 1);
  hook.fire!(controller.signal.reason);
  await assert.rejects(reply, /prometheus went away/);
  assert.equal(coordinator.scrapesInFlight, 0);
  assert.equal(hook.fire, null);
  // Answered: the hook is cleared for the relaying side's own use.
  const answered: AbortHook = { fire: null };
  const signal = new AbortController().signal;
  const second = coordinator.requestScrape({ ...scrapeInput("h"), abortHook: answered }, signal);
  const task = (await session.next(signal))!;
  const pushed = coordinator.acceptPush(
    { scrapeId: task.id, sessionId: session.id, status: 200, headers: [], error: "" },
    chunks("ok"),
  );
  const r = await second;
  assert.equal(answered.fire, null);
  assert.equal(await readAll(r), "ok");
  r.settle();
  await pushed;
});

Deno.test("settle(error) fails the push with the relaying side's reason", async () => {
  const { coordinator } = setup();
  const session = coordinator.register(identity("h"));
  const signal = new AbortController().signal;
  const reply = coordinator.requestScrape(scrapeInput("h"), signal);
  const task = (await session.next(signal))!;
  const pushed = coordinator.acceptPush(
    {
      scrapeId: task.id,
      sessionId: session.id,
      status: 200,
      headers: [],
      error: "",
    },
    chunks("x"),
  );
  (await reply).settle(new Error("prometheus closed the connection"));
  await assert.rejects(pushed, /prometheus closed/);
  assert.equal(coordinator.scrapesInFlight, 0);
});

Deno.test("a closed stream fails its unanswered scrapes at once", async () => {
  const { coordinator } = setup();
  const session = coordinator.register(identity("h"));
  const signal = new AbortController().signal;
  const reply = coordinator.requestScrape(scrapeInput("h"), signal);
  await session.next(signal);
  session.close();
  const error = await reply.catch((e) => e);
  assert.equal(kindOf(error), "client_disconnected");
  assert.equal(coordinator.scrapesInFlight, 0);
  // Still listed, as disconnected; new scrapes fail fast.
  assert.equal(coordinator.listClients()[0]!.connected, false);
  assert.equal(
    kindOf(
      await coordinator.requestScrape(scrapeInput("h"), signal).catch((e) => e),
    ),
    "client_disconnected",
  );
});

Deno.test("a disconnected client is listed until the registration timeout", () => {
  const { coordinator, clock } = setup();
  const session = coordinator.register(identity("h"));
  clock.t += 3_600_000; // an idle but connected client never expires
  assert.equal(coordinator.expire(), 0);
  assert.equal(coordinator.clientCount, 1);
  session.close();
  clock.t += 59_000;
  assert.equal(coordinator.clientCount, 1);
  clock.t += 2_000;
  assert.equal(coordinator.clientCount, 0);
  assert.deepEqual(coordinator.listClients(), []);
  assert.equal(coordinator.expire(), 1);
});

Deno.test("a new stream for the same fqdn replaces the old one cleanly", async () => {
  const { coordinator } = setup();
  const old = coordinator.register(identity("h", { v: "1" }));
  const signal = new AbortController().signal;
  const waiting = old.next(signal);
  const replacement = coordinator.register(identity("H", { v: "2" }));
  assert.equal(kindOf(await waiting.catch((e) => e)), "replaced");
  old.close(); // the old stream's adapter cleans up; the new one is unaffected
  const list = coordinator.listClients();
  assert.equal(list.length, 1);
  assert.equal(list[0]!.connected, true);
  assert.deepEqual(list[0]!.labels, { v: "2" });

  const reply = coordinator.requestScrape(scrapeInput("h"), signal);
  const task = (await replacement.next(signal))!;
  const pushed = coordinator.acceptPush(
    {
      scrapeId: task.id,
      sessionId: replacement.id,
      status: 204,
      headers: [],
      error: "",
    },
    chunks(),
  );
  const r = await reply;
  assert.equal(r.status, 204);
  r.settle();
  await pushed;
});

Deno.test("scrapes queued on a replaced stream move to the new one", async () => {
  const { coordinator } = setup();
  coordinator.register(identity("h"));
  const signal = new AbortController().signal;
  const reply = coordinator.requestScrape(scrapeInput("h"), signal);
  const replacement = coordinator.register(identity("h"));
  const task = (await replacement.next(signal))!;
  const pushed = coordinator.acceptPush(
    {
      scrapeId: task.id,
      sessionId: replacement.id,
      status: 200,
      headers: [],
      error: "",
    },
    chunks(),
  );
  (await reply).settle();
  await pushed;
});

Deno.test("listClients() is sorted and carries identity fields", () => {
  const { coordinator } = setup();
  coordinator.register(identity("b", { zone: "eu" }));
  coordinator.register(identity("a"));
  const list = coordinator.listClients();
  assert.deepEqual(list.map((c) => c.fqdn), ["a", "b"]);
  assert.deepEqual(list[1]!.labels, { zone: "eu" });
  assert.equal(list[1]!.protocol, "connect");
  assert.equal(list[1]!.connected, true);
});

Deno.test("drain() tells waiting sessions, refuses new scrapes and registrations", async () => {
  const { coordinator } = setup();
  const session = coordinator.register(identity("a"));
  const waiting = session.next(new AbortController().signal).catch((e) => e);
  assert.equal(coordinator.draining, false);
  coordinator.drain();
  coordinator.drain(); // idempotent
  assert.equal(coordinator.draining, true);
  assert.equal(kindOf(await waiting), "draining");
  assert.equal(
    kindOf(await session.next(new AbortController().signal).catch((e) => e)),
    "draining",
  );
  const refused = await coordinator.requestScrape(scrapeInput("a"), new AbortController().signal)
    .catch((e) => e);
  assert.equal(kindOf(refused), "draining");
  assert.match(refused.message, /shutting down/);
  assert.throws(() => coordinator.register(identity("b")), /shutting down/);
  assert.equal(coordinator.scrapesInFlight, 0);
});

Deno.test("while draining, a scrape sent before the stream ended can still be pushed", async () => {
  const { coordinator } = setup();
  const session = coordinator.register(identity("a"));
  const scrape = coordinator.requestScrape(scrapeInput("a"), new AbortController().signal);
  const task = await session.next(new AbortController().signal);
  assert.ok(task);
  coordinator.drain();
  session.close(); // the client left after GoAway
  assert.equal(coordinator.scrapesInFlight, 1);
  const pushed = coordinator.acceptPush(
    { scrapeId: task.id, sessionId: session.id, status: 200, headers: [], error: "" },
    chunks("up 1\n"),
  );
  const reply = await scrape;
  assert.equal(await readAll(reply), "up 1\n");
  reply.settle();
  await pushed;
  assert.equal(coordinator.scrapesInFlight, 0);
});

Deno.test("while draining, a scrape only queued fails when its stream ends", async () => {
  const { coordinator } = setup();
  const session = coordinator.register(identity("a"));
  const scrape = coordinator.requestScrape(scrapeInput("a"), new AbortController().signal)
    .catch((e) => e);
  coordinator.drain();
  session.close();
  assert.equal(kindOf(await scrape), "client_disconnected");
  assert.equal(coordinator.scrapesInFlight, 0);
});

Deno.test("recordScrapeResult() and the client's proxies show in listClients()", () => {
  const { coordinator } = setup();
  coordinator.register({ ...identity("a"), proxies: ["http://p1:8080", "http://p2:8080"] });
  assert.equal(coordinator.listClients()[0]!.lastResult, null);
  coordinator.recordScrapeResult("A", { status: 504, error: "too slow", durationMs: 1500 });
  coordinator.recordScrapeResult("nobody", { status: 200, error: "", durationMs: 1 });
  const [client] = coordinator.listClients();
  assert.deepEqual(client!.proxies, ["http://p1:8080", "http://p2:8080"]);
  assert.deepEqual(client!.lastResult, { status: 504, error: "too slow", durationMs: 1500 });
  assert.equal(coordinator.clientCount, 1);
});

Deno.test("coordinator.subscribe() reports connect, scrape, disconnect and forget", () => {
  const { coordinator, clock } = setup();
  const events: string[] = [];
  const stop = coordinator.subscribe((event) => {
    events.push(
      event.kind === "connected"
        ? `connected ${event.client.fqdn} ${event.client.peerAddress}`
        : event.kind === "disconnected"
        ? `disconnected ${event.fqdn} at ${event.at}`
        : event.kind === "scraped"
        ? `scraped ${event.fqdn} ${event.outcome.status} ${event.outcome.bytes}B`
        : `forgotten ${event.fqdn}`,
    );
  });
  const session = coordinator.register({ ...identity("a"), peerAddress: "10.0.0.5:1234" });
  clock.t += 1000;
  coordinator.recordScrapeResult("a", { status: 200, error: "", durationMs: 12, bytes: 345 });
  coordinator.recordScrapeResult("unknown", { status: 404, error: "no", durationMs: 1 });
  clock.t += 1000;
  session.close();
  clock.t += 60_000;
  coordinator.expire();
  stop();
  coordinator.register(identity("b"));
  assert.deepEqual(events, [
    "connected a 10.0.0.5:1234",
    "scraped a 200 345B",
    "disconnected a at 1002000",
    "forgotten a",
  ]);
});

Deno.test("coordinator lists the disconnect time, peer and the last 30 scrapes", () => {
  const { coordinator, clock } = setup();
  const session = coordinator.register({ ...identity("a"), peerAddress: "[::1]:5" });
  for (let i = 0; i < 35; i++) {
    clock.t += 1000;
    coordinator.recordScrapeResult("a", {
      status: i % 5 === 0 ? 503 : 200,
      error: i % 5 === 0 ? "down" : "",
      durationMs: i,
    });
  }
  let [client] = coordinator.listClients();
  assert.equal(client!.disconnectedAt, 0);
  assert.equal(client!.peerAddress, "[::1]:5");
  assert.equal(client!.recentScrapes!.length, 30);
  assert.deepEqual(client!.recentScrapes!.map((s) => s.durationMs).slice(0, 3), [5, 6, 7]);
  assert.equal(client!.recentScrapes![0]!.status, 503);
  // A client last seen before now (a legacy client's last poll) counts from then.
  const seen = clock.t - 9000;
  clock.t += 1000;
  session.close(seen);
  [client] = coordinator.listClients();
  assert.equal(client!.connected, false);
  assert.equal(client!.disconnectedAt, seen);
  const stats = coordinator.stats();
  assert.equal(stats.buckets.reduce((n, b) => n + b.scrapes, 0), 35);
  assert.equal(stats.buckets.reduce((n, b) => n + b.errors, 0), 7);
});

Deno.test("acceptPush() refuses a non-final status: the scrape gets 502 at once, never the status", async () => {
  for (const status of [100, 101, 199, 600, 0, 200.5]) {
    const { coordinator } = setup();
    const session = coordinator.register(identity("node-a"));
    const replyPromise = coordinator.requestScrape(
      scrapeInput("node-a"),
      new AbortController().signal,
    );
    const task = (await session.next(new AbortController().signal))!;
    const pushed = coordinator.acceptPush(
      { scrapeId: task.id, sessionId: session.id, status, headers: [], error: "" },
      chunks("x"),
    );
    assert.equal(kindOf(await pushed.catch((e) => e)), "invalid_status", String(status));
    const reply = await replyPromise;
    assert.equal(reply.status, 502);
    assert.match(reply.error, new RegExp(`status ${status} is not a final HTTP status`));
    reply.settle();
    assert.equal(coordinator.scrapesInFlight, 0);
  }
});

Deno.test("acceptPush() checks Content-Length and hands it over apart from the headers", async () => {
  const { coordinator } = setup();
  const session = coordinator.register(identity("node-a"));
  const run = async (headers: { name: string; value: string }[]) => {
    const replyPromise = coordinator.requestScrape(
      scrapeInput("node-a"),
      new AbortController().signal,
    );
    const task = (await session.next(new AbortController().signal))!;
    const pushed = coordinator.acceptPush(
      { scrapeId: task.id, sessionId: session.id, status: 200, headers, error: "" },
      chunks("abc"),
    );
    pushed.catch(() => {});
    return { reply: await replyPromise, pushed };
  };

  const good = await run([{ name: "Content-Length", value: "3" }, { name: "x-a", value: "1" }]);
  assert.equal(good.reply.contentLength, 3);
  assert.deepEqual(good.reply.headers, [{ name: "x-a", value: "1" }]);
  assert.equal(await readAll(good.reply), "abc");
  good.reply.settle();
  await good.pushed;

  const bad = await run([{ name: "content-length", value: "3" }, {
    name: "content-length",
    value: "4",
  }]);
  assert.equal(bad.reply.status, 502);
  assert.match(bad.reply.error, /conflicting Content-Length/);
  assert.equal(kindOf(await bad.pushed.catch((e) => e)), "invalid");
  bad.reply.settle();
  assert.equal(coordinator.scrapesInFlight, 0);
});
