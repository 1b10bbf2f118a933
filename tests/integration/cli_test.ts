/**
 * The command lines: `--help` lists every flag with its default, bad flags
 * exit 2 with a message naming the flag, `--version` prints the version.
 */

import assert from "node:assert/strict";
import { CLIENT_FLAGS } from "../../client/settings.ts";
import type { FlagSpec } from "../../lib/flags.ts";
import { PROXY_FLAGS } from "../../proxy/settings.ts";
import { DENO, denoEnv, ROOT } from "../support.ts";

async function run(program: string, args: string[]) {
  const output = await new Deno.Command(DENO, {
    args: ["run", "--allow-all", program, ...args],
    cwd: ROOT,
    env: denoEnv(),
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

const PROGRAMS: [string, readonly FlagSpec[]][] = [
  ["proxy/main.ts", PROXY_FLAGS],
  ["client/main.ts", CLIENT_FLAGS],
];
for (const [program, flags] of PROGRAMS) {
  Deno.test(`${program} --help lists every flag and its default`, async () => {
    const { code, stdout } = await run(program, ["--help"]);
    assert.equal(code, 0);
    for (const flag of flags) {
      assert.ok(
        stdout.includes(`--${flag.name}`) || stdout.includes(`--[no-]${flag.name}`),
        flag.name,
      );
      if (flag.default) {
        assert.ok(stdout.includes(`default: ${flag.default}`), `${flag.name} default`);
      }
    }
  });

  Deno.test(`${program} refuses unknown flags and bad values with exit code 2`, async () => {
    let result = await run(program, ["--no-such-flag"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /no-such-flag/);
    result = await run(program, ["--log.level=loud"]);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /--log\.level: "loud" is not one of debug, info, warn, error, warning/,
    );
  });

  Deno.test(`${program} --version prints the version`, async () => {
    const { code, stdout } = await run(program, ["--version"]);
    assert.equal(code, 0);
    assert.match(stdout, /^pushprox-(proxy|client), version \d+\.\d+\.\d+ \(branch: /);
    assert.match(stdout, /^ {2}deno version: +\d/m);
    assert.match(stdout, /^ {2}v8 version: +\d/m);
    assert.match(stdout, /^ {2}platform: +\w+\/\w+$/m);
  });

  Deno.test(`${program} takes -h, -help, -version and single-dash long flags`, async () => {
    for (const args of [["-h"], ["-help"], ["--help"]]) {
      const { code, stdout } = await run(program, args);
      assert.equal(code, 0, args[0]);
      assert.match(stdout, /^usage: /, args[0]);
    }
    const { code, stdout } = await run(program, ["-version"]);
    assert.equal(code, 0);
    assert.match(stdout, /, version \d/);
    // A single-dash long flag is read: its bad value is named.
    const bad = await run(program, ["-log.level=loud"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--log\.level: "loud" is not one of/);
  });
}

Deno.test("the client requires --proxy-url", async () => {
  const { code, stderr } = await run("client/main.ts", []);
  assert.equal(code, 2);
  assert.match(stderr, /--proxy-url is required/);
});

Deno.test("the proxy refuses a bad listen address", async () => {
  const { code, stderr } = await run("proxy/main.ts", ["--web.listen-address=nonsense"]);
  assert.equal(code, 2);
  assert.match(stderr, /Cannot parse listen address "nonsense"/);
});
