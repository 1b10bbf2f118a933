/**
 * The status page in a real browser (Debian's chromium driven by
 * playwright-core): it lists the clients with their labels, connection and
 * last scrape, filters them, refreshes itself, and shows what a hostile
 * client announced as text, never as HTML.
 */

import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClientService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { hasExecutable, proxiedGet, waitUntil } from "../support.ts";
import { startStack } from "../stack.ts";

const CHROMIUM = "/usr/bin/chromium";
const missing = !hasExecutable(CHROMIUM);
if (missing) {
  console.warn(`SKIPPED status page test: ${CHROMIUM} not installed (apt-get install chromium)`);
}

const XSS_LABEL = `<img src=x onerror="window.__xss='label'">`;
const XSS_VERSION = `<script>window.__xss='version'</script>`;
const XSS_PROXY = `<b id="bold">proxy</b>`;

Deno.test({
  name: "status page: clients, filter, auto-refresh and escaping in headless Chromium",
  ignore: missing,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Test-only: pinned in deno.dev.lock, kept out of the import map (and so out of deno.lock).
    // deno-lint-ignore no-import-prefix
    const { chromium } = await import("npm:playwright-core@1.65.1");
    // Every record stays listed after its stream ends, also the hostile
    // client's short, never scraped one (which the proxy would drop at once).
    const stack = await startStack((_req, res) => res.end("up 1\n"), {
      keepRegistrationsAfterMs: 0,
    });
    const profile = await Deno.makeTempDir({ prefix: "pushprox-chromium-" });
    const shots = await Deno.makeTempDir({ prefix: "pushprox-status-page-" });
    const evil = new AbortController();
    let context;
    try {
      await stack.startClient({ fqdn: "localhost", labels: { zone: "eu", role: "db" } });
      assert.equal((await proxiedGet(stack.proxyPort, stack.targetUrl())).status, 200);
      // A hostile client: everything it may choose freely is markup.
      const hostile = createClient(
        ClientService,
        createConnectTransport({ baseUrl: stack.proxyUrl, httpVersion: "1.1" }),
      );
      const stream = hostile.poll({
        fqdn: "evil.example",
        version: XSS_VERSION,
        labels: { note: XSS_LABEL },
        proxies: [XSS_PROXY],
      }, { signal: evil.signal });
      const reading = (async () => {
        for await (const _ of stream) { /* keep the stream open */ }
      })().catch(() => {});
      await waitUntil(
        () => stack.proxy.coordinator.listClients().length === 2 || undefined,
        5_000,
        "the hostile client to register",
      );

      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
        viewport: { width: 1280, height: 520 },
      });
      const page = await context.newPage();
      const dialogs: string[] = [];
      page.on("dialog", (dialog) => {
        dialogs.push(dialog.message());
        dialog.dismiss().catch(() => {});
      });
      const cspViolations: string[] = [];
      page.on("console", (message) => {
        if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
      });
      const response = await page.goto(`${stack.proxyUrl}/?refresh=1`);
      assert.equal(response?.status(), 200);
      // The policy stays strict: only the page's own script (by hash), same-origin fetches.
      assert.match(
        response?.headers()["content-security-policy"] ?? "",
        /^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/]+=*'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'$/,
      );
      await page.waitForSelector("#rows tr[data-fqdn='evil.example']", { timeout: 10_000 });
      assert.equal(await page.locator("#rows tr").count(), 2);

      const good = page.locator("#rows tr[data-fqdn='localhost']");
      assert.match(await good.innerText(), /zone=eu/);
      assert.match(await good.innerText(), /role=db/);
      assert.match(await good.innerText(), /connected/);
      assert.match(await good.innerText(), /HTTP 200 in \d+\.\d{3}s/);

      // Hostile strings appear as text, and none of them became markup.
      const bad = page.locator("#rows tr[data-fqdn='evil.example']");
      const text = await bad.innerText();
      assert.ok(text.includes(XSS_LABEL.replace(/^note=/, "")), text);
      assert.ok(text.includes(XSS_VERSION), text);
      assert.ok(text.includes(XSS_PROXY), text);
      assert.equal(await page.locator("#rows img, #rows script, #bold").count(), 0);
      assert.equal(await page.evaluate(() => (globalThis as { __xss?: string }).__xss), undefined);
      assert.deepEqual(dialogs, []);

      // The filter narrows the list, and says how many are shown.
      await page.fill("#filter", "zone=eu");
      assert.equal(await page.locator("#rows tr").count(), 1);
      assert.match(await page.locator("#summary").innerText(), /2 clients, 2 connected, 1 shown/);
      await page.fill("#filter", "nothing-matches-this");
      assert.equal(await page.locator("#rows tr").count(), 0);
      assert.match(await page.locator("#empty").innerText(), /No client matches/);
      await page.fill("#filter", "");

      // Auto-refresh: a client leaving shows without reloading the page.
      evil.abort();
      await reading;
      await bad.getByText("disconnected", { exact: true }).waitFor({ timeout: 10_000 });
      const shot = `${shots}/status_page.png`;
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`status page screenshot: ${shot}`);
      assert.deepEqual(cspViolations, [], "the page's own script and styles pass its CSP");
    } finally {
      evil.abort();
      await context?.close();
      await stack.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "status page with reader credentials: the browser is asked once, its fetches reuse them",
  ignore: missing,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Test-only: pinned in deno.dev.lock, kept out of the import map (and so out of deno.lock).
    // deno-lint-ignore no-import-prefix
    const { chromium } = await import("npm:playwright-core@1.65.1");
    const bcrypt = (await import("bcryptjs")).default;
    const { startSecureProxy } = await import("../secure_stack.ts");
    const proxy = await startSecureProxy({
      web: `basic_auth_users:\n  grafana: "${bcrypt.hashSync("grafana-secret", 4)}"\n`,
      auth:
        "clients:\n  open: true\nscrapers:\n  open: true\nreaders:\n  basic_auth_users: [grafana]\n",
    });
    const profile = await Deno.makeTempDir({ prefix: "pushprox-chromium-" });
    let context;
    try {
      const anonymous = await fetch(`${proxy.url}/`);
      await anonymous.body?.cancel();
      assert.equal(anonymous.status, 401);
      assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Basic /);

      context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
        httpCredentials: { username: "grafana", password: "grafana-secret" },
      });
      const page = await context.newPage();
      const response = await page.goto(`${proxy.url}/`);
      assert.equal(response?.status(), 200);
      await page.locator("#summary").getByText("0 clients").waitFor({ timeout: 10_000 });
      assert.equal(await page.locator("#error").isVisible(), false);
      // The WatchClients stream goes with the same credentials.
      await page.locator("#updated").getByText("live", { exact: true }).waitFor({
        timeout: 10_000,
      });
    } finally {
      await context?.close();
      await proxy.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});

/** Statuses the target answers, in order: the known sequence the charts must show. */
const SEQUENCE = [200, 200, 500, 200, 200, 200, 500, 200, 200, 200];

async function launch(profile: string, width: number) {
  // Test-only: pinned in deno.dev.lock, kept out of the import map (and so out of deno.lock).
  // deno-lint-ignore no-import-prefix
  const { chromium } = await import("npm:playwright-core@1.65.1");
  return await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
    viewport: { width, height: 640 },
  });
}

/** Where screenshots are kept: $PUSHPROX_TEST_ARTIFACTS, or a new temporary folder. */
async function artifactDir(): Promise<string> {
  const dir = Deno.env.get("PUSHPROX_TEST_ARTIFACTS");
  if (!dir) return await Deno.makeTempDir({ prefix: "pushprox-status-page-" });
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

Deno.test({
  name: "status page: charts from a known sequence of scrapes, live events, 800 px layout",
  ignore: missing,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    let served = 0;
    const stack = await startStack((_req, res) => {
      const status = SEQUENCE[served++ % SEQUENCE.length]!;
      res.writeHead(status, { "content-type": "text/plain" });
      res.end(status === 200 ? "up 1\n" : "broken\n");
    });
    const profile = await Deno.makeTempDir({ prefix: "pushprox-chromium-" });
    const shots = await artifactDir();
    let context;
    try {
      await stack.startClient({ fqdn: "localhost", labels: { zone: "eu" } });
      for (const status of SEQUENCE) {
        assert.equal((await proxiedGet(stack.proxyPort, stack.targetUrl())).status, status);
      }
      // A scrape for a host no client serves: a proxy-wide error only.
      assert.equal((await proxiedGet(stack.proxyPort, stack.targetUrl("/", "nosuch"))).status, 404);

      context = await launch(profile, 1280);
      const page = await context.newPage();
      const scriptErrors: string[] = [];
      page.on("pageerror", (error) => scriptErrors.push(error.message));
      // Polling every 60 s: whatever changes within seconds came through WatchClients.
      await page.goto(`${stack.proxyUrl}/?refresh=60`);
      const row = page.locator("#rows tr[data-fqdn='localhost']");
      await row.waitFor({ timeout: 10_000 });
      await page.locator("#updated").getByText("live").waitFor({ timeout: 10_000 });

      // One bar per scrape, oldest first, red where the target failed.
      const bars = await row.locator("svg.spark rect.bar").evaluateAll((nodes) =>
        nodes.map((n) => n.getAttribute("class"))
      );
      assert.deepEqual(bars, SEQUENCE.map((s) => s === 200 ? "bar ok" : "bar fail"));
      assert.match(await row.innerText(), /HTTP 200 in \d+\.\d{3}s/);
      assert.match(await row.innerText(), /v\d+\.\d+\.\d+, Connect protocol/);
      assert.match(await row.innerText(), /from 127\.0\.0\.1:\d+/);

      // The proxy-wide charts add up to the scrapes made: 11, of which 3 failed.
      const total = async (id: string) => {
        const titles = await page.locator(`#${id} rect.bar title`).allTextContents();
        return Math.round(
          titles.reduce((n, t) => n + Number(/: ([\d.]+)\/s$/.exec(t)?.[1] ?? NaN), 0) * 10,
        );
      };
      assert.equal(await total("chart-rate"), SEQUENCE.length + 1);
      assert.equal(await total("chart-errors"), 3);
      assert.ok(await page.locator("#chart-errors rect.bar.fail").count() >= 1);
      assert.ok(await page.locator("#chart-inflight rect.bar").count() >= 1);
      assert.match(await page.locator("#errors").innerText(), /^3 \(27%\)\s+in the last minute$/);
      await page.screenshot({ path: `${shots}/status_page_charts.png`, fullPage: true });

      // Live: a new client, its failed scrape and its leaving show without polling.
      const other = await stack.startClient({ fqdn: "127.0.0.2" });
      const otherRow = page.locator("#rows tr[data-fqdn='127.0.0.2']");
      await otherRow.waitFor({ timeout: 10_000 });
      const failed = await proxiedGet(stack.proxyPort, stack.targetUrl("/metrics", "127.0.0.2"));
      assert.ok(failed.status >= 500, String(failed.status));
      await otherRow.locator("svg.spark rect.bar.fail").waitFor({ timeout: 10_000 });
      await other.stop();
      await otherRow.getByText("disconnected", { exact: true }).waitFor({ timeout: 10_000 });
      // Counted from the disconnect, not from when the client connected.
      assert.match(await otherRow.innerText(), /\b[0-5]s ago/);

      // 800 px: the table stacks; nothing is cut off or scrolls sideways.
      await page.setViewportSize({ width: 800, height: 900 });
      const widths = await page.evaluate(
        `({ page: document.documentElement.scrollWidth, right: Math.max(...[...document
          .querySelectorAll("#rows td")].map((td) => td.getBoundingClientRect().right)) })`,
      ) as { page: number; right: number };
      assert.ok(widths.page <= 800 && widths.right <= 800, JSON.stringify(widths));
      await page.screenshot({ path: `${shots}/status_page_800px.png`, fullPage: true });
      console.log(`status page screenshots: ${shots}`);
      assert.deepEqual(scriptErrors, []);
    } finally {
      await context?.close();
      await stack.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "status page polls ListClients when asked not to watch (?watch=0)",
  ignore: missing,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const stack = await startStack((_req, res) => res.end("up 1\n"));
    const profile = await Deno.makeTempDir({ prefix: "pushprox-chromium-" });
    let context;
    try {
      context = await launch(profile, 1280);
      const page = await context.newPage();
      await page.goto(`${stack.proxyUrl}/?watch=0&refresh=1`);
      await page.locator("#summary").getByText("0 clients").waitFor({ timeout: 10_000 });
      assert.match(await page.locator("#updated").innerText(), /polling every 1s/);
      await stack.startClient({ fqdn: "localhost" });
      await page.locator("#rows tr[data-fqdn='localhost']").waitFor({ timeout: 10_000 });
    } finally {
      await context?.close();
      await stack.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});
