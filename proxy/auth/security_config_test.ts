import assert from "node:assert/strict";
import { sha256Hex } from "../../lib/basic_auth.ts";
import { createNullLogger } from "../../lib/logger.ts";
import { loadSecurity } from "./security_config.ts";

const OPEN = "clients: {open: true}\nscrapers: {open: true}\nreaders: {open: true}\n";
const TOKEN = "reload-token-0123456789";
const WITH_TOKEN = `clients:\n  tokens:\n    - sha256: ${sha256Hex(TOKEN)}\n      fqdns: ["**"]\n` +
  "scrapers: {open: true}\nreaders: {open: true}\n";

Deno.test("loadSecurity() warns about open roles and plain HTTP", async () => {
  const security = await loadSecurity({
    webConfigFile: "",
    authConfigFile: "",
    logger: createNullLogger(),
  });
  const warnings = security.warnings().join("\n");
  assert.match(warnings, /Authentication is OFF for clients/);
  assert.match(warnings, /Authentication is OFF for scrapers/);
  assert.match(warnings, /Authentication is OFF for readers/);
  assert.match(warnings, /Serving plain HTTP/);
});

Deno.test("loadSecurity().watch() reloads a changed auth config and keeps the old one when the new is invalid", async () => {
  const dir = await Deno.makeTempDir();
  const stop = new AbortController();
  try {
    await Deno.writeTextFile(`${dir}/auth.yml`, OPEN);
    const security = await loadSecurity({
      webConfigFile: "",
      authConfigFile: `${dir}/auth.yml`,
      logger: createNullLogger(),
      reloadIntervalMs: 50,
    });
    security.watch(stop.signal);
    assert.equal(security.auth.openRoles().length, 3);
    await Deno.writeTextFile(`${dir}/auth.yml`, WITH_TOKEN);
    const deadline = Date.now() + 3_000;
    while (security.auth.openRoles().includes("client") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.deepEqual(security.auth.openRoles(), ["scraper", "reader"]);
    const result = await security.auth.authenticate("client", {
      authorization: `Bearer ${TOKEN}`,
      peer: null,
    });
    assert.ok(result.ok);
    await Deno.writeTextFile(`${dir}/auth.yml`, "clients: {}\n");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(
      security.auth.openRoles(),
      ["scraper", "reader"],
      "the invalid file is not taken",
    );
  } finally {
    stop.abort();
    await Deno.remove(dir, { recursive: true });
  }
});
