import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { createNullLogger } from "../../lib/logger.ts";
import { parseConfig } from "./config.ts";
import { createModuleEngine, prepareConfig } from "./engine.ts";
import { createModuleMetrics } from "./metrics.ts";
import { createModuleScrapeHandler } from "./scrape_route.ts";

async function route(allowRawScrapes: boolean) {
  const registry = new Registry();
  const engine = createModuleEngine({
    config: await prepareConfig(
      parseConfig(
        "modules:\n  echo:\n    method: exec\n    exec: {command: echo, args: [m 1]}\n",
        "c",
      ),
    ),
    metrics: createModuleMetrics(registry),
    logger: createNullLogger(),
  });
  return createModuleScrapeHandler({
    engine,
    ownMetrics: () => Promise.resolve({ contentType: "text/plain", body: "own 1\n" }),
    allowRawScrapes,
  });
}

const job = (url: string, method = "GET") => ({ id: "1", method, url, headers: [] });

async function text(body: AsyncIterable<Uint8Array> | null): Promise<string> {
  let out = "";
  for await (const chunk of body ?? []) out += new TextDecoder().decode(chunk);
  return out;
}

Deno.test("module scrape route: /proxy serves modules, /-/metrics the client, raw scrapes are refused", async () => {
  const handler = await route(false);
  const signal = AbortSignal.timeout(5000);
  let url = new URL("http://host:9999/proxy?module=echo");
  let outcome = await handler(url, job(url.href), signal);
  assert.equal(outcome?.status, 200);
  assert.equal(await text(outcome!.body), "m 1\n");

  url = new URL("http://host:1/proxy?module=nope");
  outcome = await handler(url, job(url.href), signal);
  assert.equal(outcome?.status, 404);
  assert.equal(outcome?.error, 'unknown module "nope"');

  url = new URL("http://host:9369/-/metrics");
  outcome = await handler(url, job(url.href), signal);
  assert.equal(await text(outcome!.body), "own 1\n");

  url = new URL("http://host:9100/metrics");
  outcome = await handler(url, job(url.href), signal);
  assert.equal(outcome?.status, 403);
  assert.match(
    outcome!.error,
    /raw scrapes of host:9100\/metrics are refused.*--allow\.raw-scrapes/,
  );

  url = new URL("http://host:9999/proxy?module=echo");
  outcome = await handler(url, job(url.href, "POST"), signal);
  assert.equal(outcome?.status, 405);
});

Deno.test("module scrape route: --allow.raw-scrapes lets other paths through", async () => {
  const handler = await route(true);
  const url = new URL("http://host:9100/metrics");
  assert.equal(await handler(url, job(url.href), AbortSignal.timeout(5000)), null);
});
