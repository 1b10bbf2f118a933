/**
 * Fails on any circle of imports between the project's own modules in
 * proxy/, client/ and lib/: static, dynamic and type-only imports alike, as
 * Deno's own parser sees them (`deno info --json`), so imports in comments
 * and JSDoc examples do not count. Imports should point down the layers; a
 * circle means two modules are one concept split in two, or a type that
 * belongs lower down.
 *
 * Usage: `deno run --allow-read --allow-run --allow-write tools/check_imports.ts`
 * (part of `deno task ok`).
 *
 * @module
 */

import { findCycles } from "./import_cycles.ts";

const ROOT = new URL("..", import.meta.url);
const DIRS = ["proxy", "client", "lib"];

/** Every .ts file under `dir`, as file URLs. */
async function walk(dir: URL): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) found.push(...await walk(url));
    else if (entry.isFile && entry.name.endsWith(".ts")) found.push(url.href);
  }
  return found;
}

/** The module graph of `files`, from `deno info --json` on one module that imports them all. */
async function moduleGraph(files: readonly string[]): Promise<Map<string, string[]>> {
  const root = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(root, files.map((f) => `import ${JSON.stringify(f)};\n`).join(""));
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "info",
        "--json",
        `--config=${new URL("deno.json", ROOT).pathname}`,
        `--lock=${new URL("deno.dev.lock", ROOT).pathname}`,
        "--frozen",
        root,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!output.success) throw new Error(`deno info failed with exit code ${output.code}`);
    const info = JSON.parse(new TextDecoder().decode(output.stdout)) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
      }[];
    };
    const wanted = new Set(files);
    const graph = new Map<string, string[]>();
    for (const module of info.modules) {
      if (!wanted.has(module.specifier)) continue;
      const targets = new Set<string>();
      for (const dep of module.dependencies ?? []) {
        for (const to of [dep.code?.specifier, dep.type?.specifier]) {
          if (to !== undefined && wanted.has(to)) targets.add(to);
        }
      }
      graph.set(module.specifier, [...targets].sort());
    }
    return graph;
  } finally {
    await Deno.remove(root);
  }
}

if (import.meta.main) {
  const files = (await Promise.all(DIRS.map((d) => walk(new URL(`${d}/`, ROOT))))).flat().sort();
  const graph = await moduleGraph(files);
  const cycles = findCycles(graph);
  const relative = (url: string) => url.slice(ROOT.href.length);
  for (const cycle of cycles) {
    console.error(`Import circle: ${[...cycle, cycle[0]!].map(relative).join(" -> ")}`);
  }
  if (cycles.length > 0) {
    console.error(
      `${cycles.length} import circle(s) among ${
        DIRS.join("/, ")
      }/; move the shared part down a layer`,
    );
    Deno.exit(1);
  }
  console.log(`No import circles among ${graph.size} modules in ${DIRS.join("/, ")}/`);
}
