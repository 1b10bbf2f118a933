/**
 * The coordinator's part in security: fqdns bound to the credential of their
 * stream, pushes bound to it too, and the limits on clients and scrapes.
 */

import assert from "node:assert/strict";
import { type ClientIdentity, CoordinatorError, createCoordinator } from "./coordinator.ts";

function identity(fqdn: string): ClientIdentity {
  return { fqdn, labels: {}, version: "test", modules: [], protocol: "connect" };
}

function kindOf(error: unknown): string {
  assert.ok(error instanceof CoordinatorError, `expected CoordinatorError, got ${error}`);
  return error.kind;
}

function input(host: string) {
  return { host, method: "GET", url: `http://${host}:9100/metrics`, headers: [], deadline: 2e12 };
}

async function* body(): AsyncGenerator<Uint8Array> {
  yield new TextEncoder().encode("up 1\n");
}

Deno.test("register() refuses a connected fqdn to another credential, allows the same one", () => {
  const coordinator = createCoordinator({ registrationTimeoutMs: 60_000 });
  const first = coordinator.register(identity("node1"), { credential: "token:a" });
  assert.throws(
    () => coordinator.register(identity("NODE1."), { credential: "token:b" }),
    (e) => kindOf(e) === "credential_mismatch",
  );
  // The same credential replaces the stream, as a restarted client does.
  const second = coordinator.register(identity("node1"), { credential: "token:a" });
  assert.notEqual(first.id, second.id);
  second.close();
  // Once the stream is gone, the name is free again (the policy decides who may take it).
  const third = coordinator.register(identity("node1"), { credential: "token:b" });
  third.close();
  first.close();
});

Deno.test("acceptPush() refuses a push made with another credential", async () => {
  const coordinator = createCoordinator({ registrationTimeoutMs: 60_000 });
  const session = coordinator.register(identity("node1"), { credential: "cert:a" });
  const scrape = coordinator.requestScrape(input("node1"), new AbortController().signal);
  const task = (await session.next(new AbortController().signal))!;
  const head = { scrapeId: task.id, sessionId: session.id, status: 200, headers: [], error: "" };
  const refused = await coordinator.acceptPush({ ...head, credential: "cert:b" }, body())
    .catch((e) => e);
  assert.equal(kindOf(refused), "foreign_scrape");
  const accepted = coordinator.acceptPush({ ...head, credential: "cert:a" }, body());
  const reply = await scrape;
  for await (const _ of reply.body) { /* drain */ }
  reply.settle();
  await accepted;
  session.close();
});

Deno.test("register() refuses clients beyond maxClients; forgotten ones make room", () => {
  let t = 0;
  const coordinator = createCoordinator({
    registrationTimeoutMs: 1000,
    maxClients: 2,
    now: () => t,
  });
  const a = coordinator.register(identity("a"));
  const b = coordinator.register(identity("b"));
  assert.throws(() => coordinator.register(identity("c")), (e) => kindOf(e) === "too_many_clients");
  // Re-registering a known fqdn is not a new client.
  coordinator.register(identity("a")).close();
  a.close();
  t = 5000; // a is forgotten now
  const c = coordinator.register(identity("c"));
  assert.deepEqual(coordinator.listClients().map((x) => x.fqdn), ["b", "c"]);
  b.close();
  c.close();
});

Deno.test("requestScrape() refuses beyond the per-client and the proxy-wide limits", async () => {
  const coordinator = createCoordinator({
    registrationTimeoutMs: 60_000,
    maxScrapesPerClient: 2,
    maxScrapes: 3,
  });
  const a = coordinator.register(identity("a"));
  const b = coordinator.register(identity("b"));
  const stop = new AbortController();
  const waiting = [
    coordinator.requestScrape(input("a"), stop.signal),
    coordinator.requestScrape(input("a"), stop.signal),
  ];
  assert.equal(
    kindOf(await coordinator.requestScrape(input("a"), stop.signal).catch((e) => e)),
    "client_busy",
  );
  waiting.push(coordinator.requestScrape(input("b"), stop.signal));
  assert.equal(
    kindOf(await coordinator.requestScrape(input("b"), stop.signal).catch((e) => e)),
    "proxy_busy",
  );
  stop.abort(new Error("done"));
  await Promise.allSettled(waiting);
  assert.equal(coordinator.scrapesInFlight, 0);
  a.close();
  b.close();
});
