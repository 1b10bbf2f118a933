import assert from "node:assert/strict";
import { VERSION, versionText } from "./version.ts";

Deno.test("versionText() prints the version the way Prometheus programs do", () => {
  const text = versionText("pushprox-proxy");
  const lines = text.split("\n");
  assert.equal(
    lines[0],
    `pushprox-proxy, version ${VERSION} (branch: unknown, revision: unknown)`,
  );
  assert.match(text, /^ {2}build user: +\S+$/m);
  assert.match(text, /^ {2}build date: +\S+$/m);
  assert.match(
    text,
    new RegExp(`^  deno version: +${Deno.version.deno.replaceAll(".", "\\.")}$`, "m"),
  );
  assert.match(text, /^ {2}v8 version: +\d+\./m);
  assert.match(text, /^ {2}typescript version: +\d+\./m);
  assert.match(text, /^ {2}platform: +linux\/(amd64|arm64)$/m);
});
