import assert from "node:assert/strict";
import { parseConfig } from "./config.ts";
import { expexpModulesJson, modulesHtml, prefersJson, REDACTED } from "./listing.ts";
import { PAGE_STYLE } from "../../lib/page_style.ts";

Deno.test("prefersJson() reads Accept lists and q-values", () => {
  assert.equal(prefersJson("application/json"), true);
  assert.equal(prefersJson("application/json, text/plain;q=0.5"), true);
  assert.equal(prefersJson("text/html,application/json;q=0.9"), false);
  assert.equal(prefersJson("*/*"), false);
  assert.equal(prefersJson("application/json;q=0"), false);
  assert.equal(prefersJson(undefined), false);
});

Deno.test("modulesHtml() escapes module names", () => {
  const config = parseConfig(
    'modules:\n  "<b>x&y":\n    method: file\n    file: {path: /x}\n',
    "c.yaml",
  );
  const html = modulesHtml(config);
  assert.match(html, /href="\/proxy\?module=%3Cb%3Ex%26y">&lt;b&gt;x&amp;y<\/a>/);
});

Deno.test("modulesHtml() uses the shared page look and shows each module's source", () => {
  const config = parseConfig(
    "modules:\n  node:\n    method: http\n    timeout: 5s\n    http: {port: 9100, path: /metrics}\n" +
      "  cron:\n    method: file\n    file: {path: /var/lib/cron.prom}\n",
    "c.yaml",
  );
  const html = modulesHtml(config);
  assert.ok(html.includes(PAGE_STYLE), "the proxy's stylesheet");
  assert.match(html, /<h1>PushProx client<\/h1>\s*<span class="muted">2 modules<\/span>/);
  assert.match(
    html,
    /data-label="Source" class="anywhere small">http:\/\/localhost:9100\/metrics</,
  );
  assert.match(html, /\/var\/lib\/cron\.prom/);
  assert.match(html, /class="num">5s</);
  assert.doesNotMatch(html, /<script/);
});

Deno.test("expexpModulesJson() has exporter_exporter 0.4's fields and structure, secrets redacted", async () => {
  const dir = new URL("./testdata/", import.meta.url);
  const config = parseConfig(
    await Deno.readTextFile(new URL("expexp_listing.yaml", dir)),
    "expexp_listing.yaml",
  );
  const expected = JSON.parse(await Deno.readTextFile(new URL("expexp_listing.json", dir)));
  assert.deepEqual(JSON.parse(expexpModulesJson(config)), expected);
});

Deno.test("expexpModulesJson() hides query values, arguments, environment and header values", () => {
  const config = parseConfig(
    `modules:
  app:
    method: http
    http:
      port: 1
      path: /m?token=query-secret&format=x
      headers: {x-api-key: header-secret, host: app.example}
      basic_auth_username: u
      basic_auth_password: password-secret
  cron:
    method: file
    file: {path: /var/lib/x.prom}
`,
    "c.yaml",
  );
  const text = expexpModulesJson(config);
  for (const secret of ["query-secret", "header-secret", "password-secret"]) {
    assert.ok(!text.includes(secret), secret);
  }
  const listing = JSON.parse(text);
  assert.equal(
    listing.app.HTTP.Path,
    `/m?token=${encodeURIComponent(REDACTED)}&format=${encodeURIComponent(REDACTED)}`,
  );
  assert.deepEqual(listing.app.HTTP.Headers, { "x-api-key": REDACTED, host: "app.example" });
  assert.deepEqual(listing.cron.File, { Path: "/var/lib/x.prom" });
});
