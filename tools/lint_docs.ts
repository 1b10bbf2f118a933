/**
 * `deno doc --lint` on the project's entry points: the two programs and their
 * settings, the verification library (client/verify/mod.ts) and every module
 * of lib/, the layer both programs share. Every exported symbol there has
 * JSDoc and exposes no private type.
 *
 * Left out, on purpose: lib/metrics.ts, lib/process_metrics.ts and
 * lib/prom_client.ts, whose functions take (or re-export) prom-client's types; Deno 2.9's doc lint counts any
 * type from an npm package as private (denoland/deno#27364, fixed after
 * 2.9), and re-exporting it drags prom-client's internal types in. And the
 * inner modules of proxy/ and client/, until their folders settle (issue
 * 14); add them here as they do.
 *
 * Usage: `deno run --allow-read --allow-run tools/lint_docs.ts` (part of
 * `deno task ok`).
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url);

/** The programs' entry points and settings, and the verification library. */
const ENTRY_POINTS: readonly string[] = [
  "proxy/main.ts",
  "proxy/settings.ts",
  "client/main.ts",
  "client/settings.ts",
  "client/verify/mod.ts",
];

/** lib/ modules that take a prom-client type (see above). */
const NPM_TYPED: readonly string[] = [
  "lib/metrics.ts",
  "lib/process_metrics.ts",
  "lib/prom_client.ts",
];

/**
 * The files to lint: the entry points and lib/'s modules, less tests,
 * private `_x.ts` helpers and {@linkcode NPM_TYPED}.
 *
 * @returns Paths relative to the repository.
 */
export async function docLintFiles(): Promise<string[]> {
  const lib: string[] = [];
  for await (const entry of Deno.readDir(new URL("lib/", ROOT))) {
    const path = `lib/${entry.name}`;
    if (
      entry.isFile && entry.name.endsWith(".ts") && !entry.name.endsWith("_test.ts") &&
      !entry.name.startsWith("_") && !NPM_TYPED.includes(path)
    ) lib.push(path);
  }
  return [...ENTRY_POINTS, ...lib.sort()];
}

if (import.meta.main) {
  const files = await docLintFiles();
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", ...files],
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code === 0) console.log(`deno doc --lint: ${files.length} modules clean`);
  Deno.exit(code);
}
