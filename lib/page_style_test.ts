import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { escapeHtml, pageDocument, pageHeaders } from "./page_style.ts";

Deno.test("pageHeaders() allows only the page's own script, by hash", () => {
  const script = "document.title = 'x';";
  const hash = createHash("sha256").update(script).digest("base64");
  const csp = pageHeaders(script)["content-security-policy"]!;
  assert.equal(
    csp,
    `default-src 'none'; script-src 'sha256-${hash}'; style-src 'unsafe-inline'; connect-src 'self'; ` +
      "img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  );
  assert.match(
    pageHeaders()["content-security-policy"]!,
    /script-src 'none'; .*connect-src 'none'/,
  );
  assert.equal(pageHeaders()["x-frame-options"], "DENY");
});

Deno.test("pageDocument() escapes the title and embeds the script as given", () => {
  const html = pageDocument({ title: "<x>", header: "<h1>h</h1>", main: "<p>m</p>", script: "1;" });
  assert.match(html, /<title>&lt;x&gt;<\/title>/);
  assert.match(html, /<script>1;<\/script>/);
  assert.equal(
    escapeHtml(`<a href="x">'&'</a>`),
    "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;",
  );
});
