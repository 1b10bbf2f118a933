/**
 * What a client fetches for the proxy: ports (also without an explicit
 * port), paths, --use-localhost and --token-path.
 */

import assert from "node:assert/strict";
import { applyScrapePolicy, createScraper, type ScrapePolicy } from "./scraper.ts";
import type { ScrapeTransport } from "./scrape_transport.ts";

const OPEN: ScrapePolicy = { allowPorts: null, allowPaths: null, useLocalhost: false };

Deno.test("applyScrapePolicy() checks the port, the scheme's default port included", () => {
  const policy = { ...OPEN, allowPorts: [9100] };
  assert.equal(typeof applyScrapePolicy(new URL("http://node:9100/metrics"), policy), "object");
  assert.match(
    applyScrapePolicy(new URL("http://node:22/metrics"), policy) as string,
    /permissions to scrape port 22/,
  );
  // The Rancher fork let these through: no explicit port.
  assert.match(
    applyScrapePolicy(new URL("http://node/metrics"), policy) as string,
    /port 80 \(the default port of http\)/,
  );
  assert.match(
    applyScrapePolicy(new URL("https://node/metrics"), policy) as string,
    /port 443 \(the default port of https\)/,
  );
  assert.equal(
    typeof applyScrapePolicy(new URL("http://node/x"), { ...OPEN, allowPorts: [80] }),
    "object",
  );
});

Deno.test("applyScrapePolicy() checks paths: exact entries and prefixes ending in *", () => {
  const policy = { ...OPEN, allowPaths: ["/metrics", "/federate*"] };
  assert.equal(typeof applyScrapePolicy(new URL("http://n:1/metrics?x=1"), policy), "object");
  assert.equal(typeof applyScrapePolicy(new URL("http://n:1/federate/x"), policy), "object");
  assert.match(
    applyScrapePolicy(new URL("http://n:1/metrics/../admin"), policy) as string,
    /path "\/admin"/,
  );
  assert.match(applyScrapePolicy(new URL("http://n:1/metricsx"), policy) as string, /path/);
});

Deno.test("applyScrapePolicy() with useLocalhost dials 127.0.0.1 and keeps the Host", () => {
  const target = applyScrapePolicy(new URL("https://node1.example.com:10250/metrics"), {
    ...OPEN,
    useLocalhost: true,
  });
  assert.ok(typeof target === "object");
  assert.equal(target.url.toString(), "https://127.0.0.1:10250/metrics");
  assert.equal(target.hostHeader, "node1.example.com:10250");
});

function recording(): {
  transport: ScrapeTransport;
  seen: { url: string; headers: Record<string, string> }[];
} {
  const seen: { url: string; headers: Record<string, string> }[] = [];
  const transport: ScrapeTransport = (url, init) => {
    seen.push({
      url: url.toString(),
      headers: Object.fromEntries(init.headers.map((h) => [h.name, h.value])),
    });
    return Promise.resolve({ status: 200, headers: [], body: (async function* () {})() });
  };
  return { transport, seen };
}

const job = (url: string, headers: { name: string; value: string }[] = []) => ({
  id: "1",
  method: "GET",
  url,
  headers,
});

Deno.test("createScraper() refuses by policy with 403 before dialling", async () => {
  const { transport, seen } = recording();
  const scraper = createScraper({ fqdn: "node", transport, policy: { allowPorts: [9100] } });
  const outcome = await scraper.scrape(job("http://node/metrics"), new AbortController().signal);
  assert.equal(outcome.status, 403);
  assert.equal(seen.length, 0);
});

Deno.test("createScraper() sends the --token-path token, re-read on each scrape, only over https", async () => {
  const { transport, seen } = recording();
  let token = "first";
  const scraper = createScraper({
    fqdn: "node",
    transport,
    readToken: () => Promise.resolve(token + "\n"),
  });
  const signal = new AbortController().signal;
  const https = job("http://node:10250/metrics?_scheme=https", [
    { name: "authorization", value: "Basic from-prometheus" },
  ]);
  assert.equal((await scraper.scrape(https, signal)).status, 200);
  token = "rotated";
  assert.equal((await scraper.scrape(https, signal)).status, 200);
  assert.deepEqual(seen.map((s) => s.headers["authorization"]), ["Bearer first", "Bearer rotated"]);
  const plain = await scraper.scrape(job("http://node:10250/metrics"), signal);
  assert.equal(plain.status, 403);
  assert.match(plain.error, /refusing to send the --token-path token over plain http/);

  const failing = createScraper({
    fqdn: "node",
    transport,
    readToken: () => Promise.reject(new Error("No such file")),
  });
  const unreadable = await failing.scrape(https, signal);
  assert.equal(unreadable.status, 500);
  assert.match(unreadable.error, /cannot read token from token-path/);
});
