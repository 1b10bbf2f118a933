import assert from "node:assert/strict";
import { parseConfig } from "./config.ts";
import { modulesHtml, prefersJson } from "./listing.ts";

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
