import assert from "node:assert/strict";
import { createScraper, pushedHeaders, resolveTargetUrl } from "./scraper.ts";

Deno.test("createScraper() refuses hosts other than its fqdn without dialling", async () => {
  let dialled = false;
  const scraper = createScraper({
    fqdn: "node1.example",
    transport: () => {
      dialled = true;
      return Promise.reject(new Error("must not be called"));
    },
  });
  const outcome = await scraper.scrape(
    { id: "x", method: "GET", url: "http://evil.example:22/", headers: [] },
    new AbortController().signal,
  );
  assert.equal(outcome.status, 403);
  assert.match(outcome.error, /does not match the client's fqdn "node1.example"/);
  assert.equal(dialled, false);
});

Deno.test("resolveTargetUrl() compares hosts as routing keys and applies _scheme", () => {
  assert.equal(
    String(resolveTargetUrl("http://NODE1.example.:9100/m?_scheme=https&a=1", "node1.example")),
    "https://node1.example.:9100/m?a=1",
  );
  assert.match(String(resolveTargetUrl("http://other:9100/", "node1.example")), /does not match/);
  // The parameter's name percent-encoded, and queries without it.
  assert.equal(
    String(resolveTargetUrl("http://h:1/m?%5Fscheme=https&b=%41", "h")),
    "https://h:1/m?b=A",
  );
  assert.equal(String(resolveTargetUrl("http://h:1/m?module=x", "h")), "http://h:1/m?module=x");
  assert.match(String(resolveTargetUrl("http://h:1/m?_scheme=ftp", "h")), /_scheme must be/);
});

Deno.test("pushedHeaders() keeps the target's Content-Length, not its framing fields", () => {
  assert.deepEqual(
    pushedHeaders([
      ["Content-Type", "text/plain"],
      ["Content-Encoding", "gzip"],
      ["Content-Length", "44"],
      ["Connection", "keep-alive"],
    ]),
    [
      { name: "content-type", value: "text/plain" },
      { name: "content-encoding", value: "gzip" },
      { name: "content-length", value: "44" },
    ],
  );
  assert.deepEqual(
    pushedHeaders([["Transfer-Encoding", "chunked"], ["Content-Type", "text/plain"]]),
    [{ name: "content-type", value: "text/plain" }],
    "a chunked body has no length",
  );
  assert.deepEqual(
    pushedHeaders([["Content-Length", "1, 2"]]),
    [],
    "an unusable length is left out",
  );
  assert.deepEqual(
    pushedHeaders([["content-length", " 007 "], ["Content-Length", "7"]]),
    [{ name: "content-length", value: "7" }],
    "a repeated length, as declaredLength reads it",
  );
  assert.deepEqual(pushedHeaders([["content-length", "0012"]]), [
    { name: "content-length", value: "12" },
  ]);
});

Deno.test("createScraper() works out a URL's target once and refuses it the same each time", async () => {
  const seen: { url: URL; headers: readonly { name: string; value: string }[] }[] = [];
  const scraper = createScraper({
    fqdn: "node1.example",
    policy: { useLocalhost: true, allowPorts: [9100] },
    transport: (url, init) => {
      seen.push({ url, headers: init.headers });
      return Promise.resolve({ status: 200, headers: [], body: (async function* () {})() });
    },
  });
  const job = (url: string) => ({ id: "x", method: "GET", url, headers: [] });
  const signal = new AbortController().signal;
  for (let i = 0; i < 3; i++) {
    assert.equal((await scraper.scrape(job("http://node1.example:9100/m"), signal)).status, 200);
    const refused = await scraper.scrape(job("http://node1.example:22/"), signal);
    assert.equal(refused.status, 403);
    assert.match(refused.error, /port 22/);
  }
  assert.equal(seen.length, 3);
  assert.equal(String(seen[0]!.url), "http://127.0.0.1:9100/m");
  assert.ok(seen.every((s) => s.url === seen[0]!.url), "parsed once");
  for (const { headers } of seen) {
    assert.deepEqual(headers, [{ name: "host", value: "node1.example:9100" }]);
  }
});

Deno.test("createScraper() pushes the same frozen fields once worked out, others anew", async () => {
  const frozen = Object.freeze([
    Object.freeze(["content-type", "text/plain"] as [string, string]),
    Object.freeze(["content-length", "2"] as [string, string]),
  ]) as [string, string][];
  const answers: [string, string][][] = [frozen, frozen, [["content-type", "text/html"]], frozen];
  const scraper = createScraper({
    fqdn: "h",
    transport: () =>
      Promise.resolve({ status: 200, headers: answers.shift()!, body: (async function* () {})() }),
  });
  const job = { id: "x", method: "GET", url: "http://h:1/m", headers: [] };
  const signal = new AbortController().signal;
  const first = (await scraper.scrape(job, signal)).headers;
  const second = (await scraper.scrape(job, signal)).headers;
  const third = (await scraper.scrape(job, signal)).headers;
  assert.equal(second, first);
  assert.ok(Object.isFrozen(first) && Object.isFrozen(first[0]));
  assert.deepEqual(first, [
    { name: "content-type", value: "text/plain" },
    { name: "content-length", value: "2" },
  ]);
  assert.deepEqual(third, [{ name: "content-type", value: "text/html" }]);
  assert.ok(!Object.isFrozen(third));
  assert.equal((await scraper.scrape(job, signal)).headers, first);
});

Deno.test("createScraper() forwards the same frozen fields while a URL's request fields repeat", async () => {
  const sent: (readonly { name: string; value: string }[])[] = [];
  const scraper = createScraper({
    fqdn: "h",
    policy: { useLocalhost: true },
    transport: (_url, init) => {
      sent.push(init.headers);
      return Promise.resolve({ status: 200, headers: [], body: (async function* () {})() });
    },
  });
  const signal = new AbortController().signal;
  // New field objects per scrape, as each Poll message decodes to.
  const job = (url: string, accept: string) => ({
    id: "x",
    method: "GET",
    url,
    headers: [{ name: "Accept", value: accept }, { name: "Connection", value: "close" }],
  });
  await scraper.scrape(job("http://h:1/m", "text/plain"), signal);
  await scraper.scrape(job("http://h:1/m", "text/plain"), signal);
  await scraper.scrape(job("http://h:1/m", "*/*"), signal);
  await scraper.scrape(job("http://h:2/m", "*/*"), signal);
  await scraper.scrape(job("http://h:2/m", "*/*"), signal);
  assert.equal(sent[1], sent[0]);
  assert.ok(Object.isFrozen(sent[0]) && Object.isFrozen(sent[0]![0]));
  assert.deepEqual(sent.map((headers) => headers.map((f) => `${f.name}=${f.value}`)), [
    ["accept=text/plain", "host=h:1"],
    ["accept=text/plain", "host=h:1"],
    ["accept=*/*", "host=h:1"],
    ["accept=*/*", "host=h:2"],
    ["accept=*/*", "host=h:2"],
  ]);
  assert.notEqual(sent[2], sent[1]);
  assert.equal(sent[4], sent[3]);
});

Deno.test("createScraper() takes a frozen request field list again by identity, a mutable one never", async () => {
  const sent: (readonly { name: string; value: string }[])[] = [];
  const scraper = createScraper({
    fqdn: "h",
    transport: (_url, init) => {
      sent.push(init.headers);
      return Promise.resolve({ status: 200, headers: [], body: (async function* () {})() });
    },
  });
  const signal = new AbortController().signal;
  // The Poll stream's decoder hands the same frozen list while messages repeat.
  const shared = Object.freeze([Object.freeze({ name: "Accept", value: "text/plain" })]);
  const job = (url: string, headers: readonly { name: string; value: string }[]) => ({
    id: "x",
    method: "GET",
    url,
    headers,
  });
  await scraper.scrape(job("http://h:1/m", shared), signal);
  await scraper.scrape(job("http://h:1/m", shared), signal);
  await scraper.scrape(job("http://h:2/m", shared), signal);
  // A list not frozen, changed in place between scrapes: worked out again.
  const mutable = [{ name: "Accept", value: "text/plain" }];
  await scraper.scrape(job("http://h:2/m", mutable), signal);
  mutable[0]!.value = "*/*";
  await scraper.scrape(job("http://h:2/m", mutable), signal);
  assert.equal(sent[1], sent[0]);
  assert.notEqual(sent[2], sent[1]);
  assert.equal(sent[3], sent[2]);
  assert.deepEqual(sent.map((headers) => headers.map((f) => `${f.name}=${f.value}`)), [
    ["accept=text/plain"],
    ["accept=text/plain"],
    ["accept=text/plain"],
    ["accept=text/plain"],
    ["accept=*/*"],
  ]);
});
