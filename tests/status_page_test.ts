/**
 * The status page in a real browser (Debian's chromium driven by
 * playwright-core): it lists the clients with their labels, connection and
 * last scrape, filters them, refreshes itself, and shows what a hostile
 * client announced as text, never as HTML.
 */

import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClientService } from "../gen/pushprox/v1/pushprox_pb.ts";
import { hasExecutable, proxiedGet, waitUntil } from "./support.ts";
import { startStack } from "./stack.ts";

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
    const stack = await startStack((_req, res) => res.end("up 1\n"));
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
    const { startSecureProxy } = await import("./secure_stack.ts");
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
    } finally {
      await context?.close();
      await proxy.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});
