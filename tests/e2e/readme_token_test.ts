/**
 * README's client-token recipe, run as written: the shell block after the
 * marker comment is extracted from README.md and run with bash and openssl
 * in a temporary directory; a real proxy configured with the hash it prints
 * then accepts a real client registering with the token file it wrote.
 */

import assert from "node:assert/strict";
import { sha256Hex } from "../../lib/basic_auth.ts";
import {
  hasExecutable,
  ROOT,
  startClientProcess,
  startProxyProcess,
  type TestProcess,
  waitUntil,
} from "../support.ts";
import { tempDir } from "../fixture.ts";

const MARKER = "<!-- tests/e2e/readme_token_test.ts runs the next block as written -->";

/** The lines of the first ```sh block after the marker. */
function recipeFromReadme(): string {
  const readme = Deno.readTextFileSync(`${ROOT}/README.md`);
  const at = readme.indexOf(MARKER);
  assert.ok(at >= 0, `README.md has no token recipe marked ${MARKER}`);
  const match = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(match, "no ```sh block after the token recipe marker");
  return match[1]!;
}

async function runRecipe(script: string, dir: string): Promise<string> {
  const output = await new Deno.Command("bash", {
    args: ["-euo", "pipefail", "-c", script],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  return new TextDecoder().decode(output.stdout);
}

Deno.test({
  name: "README's token recipe makes a token that the proxy accepts with the hash it prints",
  ignore: !hasExecutable("/usr/bin/openssl") || !hasExecutable("/usr/bin/bash"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pushprox-token-" });
    const processes: TestProcess[] = [];
    try {
      const printed = await runRecipe(recipeFromReadme(), dir);
      const hash = /\b[0-9a-f]{64}\b/.exec(printed)?.[0];
      assert.ok(hash, `the recipe printed no SHA-256: ${JSON.stringify(printed)}`);
      const token = await Deno.readTextFile(`${dir}/token`);
      assert.equal(sha256Hex(token.trim()), hash, "the hash is of the token the programs use");

      await Deno.writeTextFile(
        `${dir}/auth.yml`,
        [
          "clients:",
          "  tokens:",
          "    - name: node1",
          `      sha256: ${hash}`,
          "      fqdns: [node1.example.com]",
          "scrapers:",
          "  open: true",
          "readers:",
          "  open: true",
          "",
        ].join("\n"),
      );
      const proxy = await startProxyProcess([`--auth.config.file=${dir}/auth.yml`]);
      processes.push(proxy.process);
      const client = startClientProcess([
        `--proxy-url=${proxy.url}/`,
        "--fqdn=node1.example.com",
        `--auth.token-file=${dir}/token`,
      ]);
      processes.push(client);
      await waitUntil(
        async () => {
          const groups = await (await fetch(`${proxy.url}/clients`)).json() as {
            targets: string[];
          }[];
          return groups.some((g) => g.targets.includes("node1.example.com")) || undefined;
        },
        15_000,
        "the client to register with the README's token",
      ).catch((error) => {
        throw new Error(`${error.message}\nclient:\n${client.output()}`);
      });
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the old recipe (openssl rand -hex 32 > token; sha256sum < token) hashes the newline",
  ignore: !hasExecutable("/usr/bin/openssl") || !hasExecutable("/usr/bin/bash"),
  async fn() {
    // Why the README's recipe strips the newline: the programs trim the
    // token, so this hash can never match.
    await using temp = await tempDir({ prefix: "pushprox-token-" });
    const dir = temp.path;
    const printed = await runRecipe("openssl rand -hex 32 > token\nsha256sum < token\n", dir);
    const token = await Deno.readTextFile(`${dir}/token`);
    assert.ok(token.endsWith("\n"));
    assert.notEqual(sha256Hex(token.trim()), printed.slice(0, 64));
  },
});
