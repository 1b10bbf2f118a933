import assert from "node:assert/strict";
import { moduleNameProblem, parseConfig } from "../config.ts";

Deno.test("parseConfig() reads exec and file modules", () => {
  const config = parseConfig(
    `modules:
  script:
    method: exec
    exec:
      command: ./collect.sh
      args: [--fast, 42, true]
  inherit:
    method: exec
    exec: {command: /bin/true, env: {}}
  withpath:
    method: exec
    exec: {command: /bin/true, env: {PATH: /usr/bin, N: 5}}
  textfile:
    method: file
    timeout: 0
    file:
      path: /var/lib/metrics.prom
`,
    "expexp.yaml",
  );
  assert.deepEqual(config.modules.get("script"), {
    name: "script",
    timeoutMs: undefined,
    source: { file: "expexp.yaml", line: 2 },
    method: "exec",
    exec: { command: "./collect.sh", args: ["--fast", "42", "true"], env: undefined },
  });
  const inherit = config.modules.get("inherit");
  assert.ok(inherit?.method === "exec");
  assert.equal(inherit.exec.env, undefined);
  const withPath = config.modules.get("withpath");
  assert.ok(withPath?.method === "exec");
  assert.deepEqual(withPath.exec.env, { PATH: "/usr/bin", N: "5" });
  assert.deepEqual(config.modules.get("textfile"), {
    name: "textfile",
    timeoutMs: undefined,
    source: { file: "expexp.yaml", line: 13 },
    method: "file",
    file: { path: "/var/lib/metrics.prom" },
  });
  assert.deepEqual(config.warnings, []);
});

Deno.test("moduleNameProblem() accepts ordinary names only", () => {
  for (const name of ["node", "node_exporter", "a.b", "blackbox-icmp", "ünï", "x y"]) {
    assert.equal(moduleNameProblem(name), undefined, name);
  }
  for (const name of ["", "/", "a/b", "a\\\\b", "..", "a..b", ".", "a\\u0000", "a\\u007f"]) {
    const input = JSON.parse(`"${name}"`) as string;
    assert.notEqual(moduleNameProblem(input), undefined, name);
  }
});
