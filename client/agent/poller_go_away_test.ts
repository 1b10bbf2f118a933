import assert from "node:assert/strict";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import { ClientService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { createNullLogger } from "../../lib/logger.ts";
import { createClientMetrics } from "./metrics.ts";
import { runPoller } from "./poller.ts";
import type { Scraper } from "../scrape/scraper.ts";

const IDENTITY = { fqdn: "host", labels: {}, version: "test", modules: [] };

Deno.test("runPoller() reconnects at once after GoAway, without back-off, and announces its proxies", async () => {
  const polls: { at: number; proxies: string[] }[] = [];
  const pushed: string[] = [];
  let releaseScrape = () => {};
  const scraper: Scraper = {
    scrape: async () => {
      await new Promise<void>((resolve) => releaseScrape = resolve);
      return {
        status: 200,
        headers: [],
        error: "",
        body: (async function* () {
          yield new TextEncoder().encode("late 1\n");
        })(),
      };
    },
  };
  const client = createClient(
    ClientService,
    createRouterTransport(({ service }) => {
      service(ClientService, {
        async *poll(request) {
          polls.push({ at: Date.now(), proxies: request.proxies });
          yield {
            message: { case: "registered", value: { sessionId: "s", heartbeatIntervalMs: 0 } },
          };
          if (polls.length === 1) {
            // A scrape, then the proxy shuts down before it is answered.
            yield {
              message: { case: "scrape", value: { id: "x", url: "http://host/", timeoutMs: 5000 } },
            };
            yield { message: { case: "goAway", value: { reason: "shutting down" } } };
            return;
          }
          await new Promise(() => {}); // the second stream stays open
        },
        async push(requests) {
          for await (const request of requests) {
            if (request.message.case === "head") pushed.push(request.message.value.scrapeId);
          }
          return {};
        },
      });
    }),
  );
  const stop = new AbortController();
  const started = Date.now();
  const running = runPoller({
    client,
    identity: IDENTITY,
    scraper,
    logger: createNullLogger(),
    metrics: createClientMetrics({ defaultMetrics: false }),
    retryInitialMs: 5_000, // a back-off would show
    retryMaxMs: 5_000,
    proxies: () => ["http://a:8080", "http://b:8080"],
    signal: stop.signal,
  });
  while (polls.length < 2 && Date.now() - started < 3_000) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(polls.length, 2, "reconnected");
  assert.ok(
    polls[1]!.at - polls[0]!.at < 1_000,
    `reconnected after ${polls[1]!.at - polls[0]!.at}ms`,
  );
  assert.deepEqual(polls[0]!.proxies, ["http://a:8080", "http://b:8080"]);
  // The scrape received before GoAway still runs and is pushed.
  releaseScrape();
  while (pushed.length < 1 && Date.now() - started < 3_000) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.deepEqual(pushed, ["x"]);
  stop.abort();
  await running;
});
