import assert from "node:assert/strict";
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type ServiceImpl,
} from "@connectrpc/connect";
import { CallCode, CallError } from "../transport/call_error.ts";
import { ClientService, type PushRequest } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { createNullLogger } from "../../lib/logger.ts";
import { createClientMetrics } from "./metrics.ts";
import { runPoller } from "./poller.ts";
import type { Scraper } from "../scrape/scraper.ts";

const IDENTITY = { fqdn: "host", labels: {}, version: "test", modules: [] };

function fakeProxy(impl: Partial<ServiceImpl<typeof ClientService>>) {
  return createClient(
    ClientService,
    createRouterTransport(({ service }) => {
      service(ClientService, {
        // deno-lint-ignore require-yield
        async *poll() {
          throw new ConnectError("not implemented", Code.Unimplemented);
        },
        push() {
          throw new ConnectError("not implemented", Code.Unimplemented);
        },
        ...impl,
      });
    }),
  );
}

const scraper: Scraper = {
  scrape: () =>
    Promise.resolve({
      status: 200,
      headers: [{ name: "content-type", value: "text/plain" }],
      error: "",
      body: (async function* () {
        yield new TextEncoder().encode("a 1\n");
        yield new TextEncoder().encode("b 2\n");
      })(),
    }),
};

function until(condition: () => boolean, ms = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (condition()) return resolve();
      if (Date.now() - started > ms) return reject(new Error("condition not met"));
      setTimeout(tick, 10);
    };
    tick();
  });
}

Deno.test("runPoller() registers, scrapes and pushes with the session id", async () => {
  const pushes: { head: unknown; body: string }[] = [];
  const client = fakeProxy({
    async *poll(_request, context) {
      yield {
        message: { case: "registered", value: { sessionId: "s-1", heartbeatIntervalMs: 1000 } },
      };
      yield {
        message: {
          case: "scrape",
          value: {
            id: "scrape-1",
            method: "GET",
            url: "http://host:9100/metrics",
            timeoutMs: 5000,
          },
        },
      };
      await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
    },
    async push(requests: AsyncIterable<PushRequest>) {
      let head: unknown;
      let body = "";
      for await (const request of requests) {
        if (request.message.case === "head") head = request.message.value;
        if (request.message.case === "bodyChunk") {
          body += new TextDecoder().decode(request.message.value);
        }
      }
      pushes.push({ head, body });
      return { bytesRelayed: BigInt(body.length) };
    },
  });
  const metrics = createClientMetrics({ defaultMetrics: false });
  const stop = new AbortController();
  const done = runPoller(
    {
      client,
      identity: IDENTITY,
      scraper,
      logger: createNullLogger(),
      metrics,
      signal: stop.signal,
    },
  );
  await until(() => pushes.length === 1);
  stop.abort();
  await done;
  const head = pushes[0]!.head as { scrapeId: string; sessionId: string; status: number };
  assert.equal(head.scrapeId, "scrape-1");
  assert.equal(head.sessionId, "s-1");
  assert.equal(head.status, 200);
  assert.equal(pushes[0]!.body, "a 1\nb 2\n");
  assert.equal((await metrics.scrapes.get()).values[0]?.value, 1);
});

Deno.test("runPoller() reconnects when heartbeats stop", async () => {
  let polls = 0;
  const client = fakeProxy({
    async *poll(_request, context) {
      polls++;
      yield {
        message: {
          case: "registered",
          value: { sessionId: `s-${polls}`, heartbeatIntervalMs: 30 },
        },
      };
      // Then silence: a dead proxy or a load balancer holding the stream.
      await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
    },
  });
  const metrics = createClientMetrics({ defaultMetrics: false });
  const stop = new AbortController();
  const done = runPoller(
    {
      client,
      identity: IDENTITY,
      scraper,
      logger: createNullLogger(),
      metrics,
      retryInitialMs: 10,
      signal: stop.signal,
    },
  );
  await until(() => polls >= 3);
  stop.abort();
  await done;
  assert.ok((await metrics.pollErrors.get()).values[0]!.value >= 2);
});

Deno.test("runPoller() backs off between failed attempts", async () => {
  const attempts: number[] = [];
  const client = fakeProxy({
    // deno-lint-ignore require-yield
    async *poll() {
      attempts.push(Date.now());
      throw new ConnectError("proxy down", Code.Unavailable);
    },
  });
  const stop = new AbortController();
  const done = runPoller({
    client,
    identity: IDENTITY,
    scraper,
    logger: createNullLogger(),
    metrics: createClientMetrics({ defaultMetrics: false }),
    retryInitialMs: 40,
    retryMaxMs: 80,
    signal: stop.signal,
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  stop.abort();
  await done;
  // ~40±20, 60±30, then 80±40 ms between attempts: far fewer than a busy loop.
  assert.ok(attempts.length >= 3 && attempts.length <= 15, `${attempts.length} attempts`);
  const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
  assert.ok(gaps.every((g) => g >= 15), `gaps ${gaps}`);
});

for (
  const [kind, replacedError] of [
    ["connect-es", () => new ConnectError("replaced", Code.AlreadyExists)],
    ["native", () => new CallError("replaced", CallCode.AlreadyExists)],
  ] as const
) {
  Deno.test(`runPoller() backs off when another client took its fqdn (${kind} error)`, async () => {
    let polls = 0;
    const client = fakeProxy({
      async *poll() {
        polls++;
        yield {
          message: { case: "registered", value: { sessionId: "s", heartbeatIntervalMs: 1000 } },
        };
        await new Promise((resolve) => setTimeout(resolve, 30));
        throw replacedError();
      },
    });
    const stop = new AbortController();
    const done = runPoller({
      client,
      identity: IDENTITY,
      scraper,
      logger: createNullLogger(),
      metrics: createClientMetrics({ defaultMetrics: false }),
      retryInitialMs: 200,
      retryMaxMs: 400,
      signal: stop.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    stop.abort();
    await done;
    assert.ok(polls <= 4, `${polls} polls in 500ms: no flapping`);
  });
}

Deno.test("runPoller() finishes in-flight scrapes before it stops", async () => {
  let pushed = false;
  const client = fakeProxy({
    async *poll(_request, context) {
      yield {
        message: { case: "registered", value: { sessionId: "s", heartbeatIntervalMs: 1000 } },
      };
      yield {
        message: {
          case: "scrape",
          value: { id: "slow", method: "GET", url: "http://host/", timeoutMs: 5000 },
        },
      };
      await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
    },
    async push(requests: AsyncIterable<PushRequest>) {
      for await (const _ of requests) { /* drain */ }
      pushed = true;
      return {};
    },
  });
  let started = false;
  const slowScraper: Scraper = {
    async scrape() {
      started = true;
      await new Promise((resolve) => setTimeout(resolve, 200));
      return { status: 200, headers: [], error: "", body: null };
    },
  };
  const stop = new AbortController();
  const done = runPoller({
    client,
    identity: IDENTITY,
    scraper: slowScraper,
    logger: createNullLogger(),
    metrics: createClientMetrics({ defaultMetrics: false }),
    signal: stop.signal,
  });
  await until(() => started);
  stop.abort();
  await done;
  assert.equal(pushed, true, "the scrape in flight at shutdown was pushed");
});
