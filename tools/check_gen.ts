/**
 * Checks that gen/ is what `deno task gen` makes from proto/ today: generates
 * into a temporary folder with the pinned buf and protoc-gen-es and compares
 * file by file, without touching the working tree.
 *
 * Usage: `deno run --allow-all tools/check_gen.ts` (part of `deno task ok`).
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url);

/** Every file under `dir`, relative to it, with its bytes. */
async function files(dir: string, prefix = ""): Promise<Map<string, Uint8Array>> {
  const found = new Map<string, Uint8Array>();
  for await (const entry of Deno.readDir(`${dir}/${prefix}`)) {
    const path = `${prefix}${entry.name}`;
    if (entry.isDirectory) {
      for (const [p, bytes] of await files(dir, `${path}/`)) found.set(p, bytes);
    } else if (entry.isFile) {
      found.set(path, await Deno.readFile(`${dir}/${path}`));
    }
  }
  return found;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

if (import.meta.main) {
  const out = await Deno.makeTempDir({ prefix: "pushprox-gen-" });
  try {
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--lock=deno.dev.lock",
        "--frozen",
        "-A",
        "npm:@bufbuild/buf@1.74.0",
        "generate",
        "-o",
        out,
      ],
      cwd: ROOT,
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (code !== 0) {
      console.error(`buf generate failed with exit code ${code}`);
      Deno.exit(1);
    }
    const want = await files(`${out}/gen`);
    const have = await files(new URL("gen", ROOT).pathname);
    const problems: string[] = [];
    for (const [path, bytes] of want) {
      const had = have.get(path);
      if (had === undefined) problems.push(`gen/${path} is missing`);
      else if (!same(had, bytes)) problems.push(`gen/${path} differs from what proto/ generates`);
    }
    for (const path of have.keys()) {
      if (!want.has(path)) problems.push(`gen/${path} is not generated from proto/`);
    }
    for (const problem of problems) console.error(problem);
    if (problems.length > 0) {
      console.error("gen/ does not match proto/: run deno task gen and commit the result");
      Deno.exit(1);
    }
    console.log(`gen/ matches proto/ (${want.size} files)`);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}
