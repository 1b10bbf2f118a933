/**
 * Errors that can never succeed stop the client instead of being retried
 * forever: bad `--label` and `--fqdn` values at start-up (exit status 2, the
 * reason on stderr), and a proxy that refuses the client's identity or
 * credential (permission_denied, invalid_argument) a few times in a row
 * (exit status 1 with an error line). The client runs with its task's flags.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DENO, denoEnv, spawn, startProxyProcess, taskArgs, type TestProcess } from "../support.ts";
import { tempDir } from "../fixture.ts";

async function clientExit(args: string[]): Promise<{ code: number; text: string }> {
  const process = spawn(DENO, [...taskArgs("client"), ...args], { env: denoEnv() });
  const timer = setTimeout(() => process.kill("SIGKILL"), 60_000);
  try {
    const status = await process.status;
    return { code: status.code, text: process.output() };
  } finally {
    clearTimeout(timer);
  }
}

for (
  const [flag, pattern] of [
    ["--label=__bad=1", /--label: label name "__bad" is not a valid Prometheus label name/],
    ["--label=1x=1", /--label: label name "1x" is not a valid/],
    ["--label=a-b=1", /--label: label name "a-b" is not a valid/],
    ["--fqdn=a/b", /--fqdn: fqdn "a\/b" is not a host name or IP address/],
  ] as const
) {
  Deno.test(`the client refuses ${flag} at start-up with exit status 2`, async () => {
    const { code, text } = await clientExit([
      "--proxy-url=http://127.0.0.1:9/",
      "--fqdn=ok.example",
      "--metrics-addr=",
      flag,
    ]);
    assert.equal(code, 2, text);
    assert.match(text, pattern);
    assert.doesNotMatch(text, /Starting pushprox-client/);
  });
}

Deno.test({
  name: "the client gives up with exit status 1 when the proxy keeps refusing its credential",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "pushprox-refusal-" });
    const processes: TestProcess[] = [];
    try {
      const token = "node-a-token-0123456789";
      const sha256 = createHash("sha256").update(token).digest("hex");
      await Deno.writeTextFile(`${dir}/token`, token);
      await Deno.writeTextFile(
        `${dir}/auth.yml`,
        `clients:\n  tokens:\n    - name: a\n      sha256: ${sha256}\n      fqdns: [node-a]\n` +
          `scrapers:\n  open: true\nreaders:\n  open: true\n`,
      );
      const proxy = await startProxyProcess([`--auth.config.file=${dir}/auth.yml`]);
      processes.push(proxy.process);
      const client = spawn(DENO, [
        ...taskArgs("client"),
        `--proxy-url=${proxy.url}/`,
        "--fqdn=node-b",
        `--auth.token-file=${dir}/token`,
        "--metrics-addr=",
        "--proxy.retry.initial-wait=100ms",
        "--proxy.retry.max-wait=200ms",
      ], { env: denoEnv() });
      processes.push(client);
      const timer = setTimeout(() => client.kill("SIGKILL"), 60_000);
      const status = await client.status.finally(() => clearTimeout(timer));
      const text = client.output();
      assert.equal(status.code, 1, text);
      assert.match(text, /level=error msg="Giving up: the proxy will not accept this client/);
      assert.match(text, /refused this client 3 times in a row: \[permission_denied\]/);
      assert.equal(text.match(/level=warn msg="Poll stream failed"/g)?.length ?? 0, 2, text);
    } finally {
      await Promise.all(processes.map((p) => p.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a YAML error in --config.file exits 2 naming the file, without pointing at --help", async () => {
  await using temp = await tempDir({ prefix: "pushprox-yaml-" });
  const dir = temp.path;
  await Deno.writeTextFile(`${dir}/bad.yaml`, "modules:\n  node: [unclosed\n");
  const { code, text } = await clientExit([
    "--proxy-url=http://127.0.0.1:9/",
    "--fqdn=ok.example",
    "--metrics-addr=",
    `--config.file=${dir}/bad.yaml`,
  ]);
  assert.equal(code, 2, text);
  assert.match(text, /bad\.yaml/);
  assert.doesNotMatch(text, /see --help/);
});
