import assert from "node:assert/strict";
import { parseConfig } from "./config.ts";
import { modulesHtml, prefersJson } from "./listing.ts";
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
