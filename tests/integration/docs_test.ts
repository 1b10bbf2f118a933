/**
 * What users read stays true: every deno.json task has a description
 * (`deno task` lists them), and every log message the README's
 * Troubleshooting table quotes is one the programs really write.
 */

import assert from "node:assert/strict";
import { ROOT } from "../support.ts";

Deno.test("every deno.json task is an object with a description", () => {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`));
  for (const [name, task] of Object.entries(config.tasks)) {
    assert.equal(typeof task, "object", `task ${name} has no description`);
    const { description, command } = task as { description?: string; command?: string };
    assert.ok(description && description.length >= 10, `task ${name}: description`);
    assert.ok(command, `task ${name}: command`);
  }
});

function sources(dir: string): string {
  let text = "";
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) text += sources(path);
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts")) {
      text += Deno.readTextFileSync(path);
    }
  }
  return text;
}

Deno.test("the README's Troubleshooting table quotes log messages the programs write", () => {
  const readme = Deno.readTextFileSync(`${ROOT}/README.md`);
  const start = readme.indexOf("## Troubleshooting");
  assert.ok(start > 0, "README has a Troubleshooting section");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  const code = sources(`${ROOT}/proxy`) + sources(`${ROOT}/client`) + sources(`${ROOT}/lib`);
  const quoted = [...section.matchAll(/^\| (?:Proxy|Client): `([^`]+)`/gm)]
    .map((m) => m[1]!);
  assert.ok(quoted.length >= 8, `log lines quoted: ${quoted.length}`);
  for (const line of quoted) {
    // The message up to the first field or ellipsis must appear in the code.
    const message = line.split(/ …| \w+=|…/)[0]!.trim();
    assert.ok(message.length >= 8, line);
    assert.ok(code.includes(message), `"${message}" is not written by the programs`);
  }
});
