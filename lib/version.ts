/**
 * The product's version, reported by `--version`, in registrations and in
 * the `pushprox_build_info` metric.
 *
 * @module
 */

/** The release version. */
export const VERSION = "0.1.0";

/**
 * Where the build came from. A release build replaces these values (for
 * example with `sed` before `deno compile`); from a source checkout they stay
 * "unknown", as Prometheus programs built without `-ldflags` print them.
 */
export const BUILD: {
  readonly branch: string;
  readonly revision: string;
  readonly user: string;
  readonly date: string;
} = {
  branch: "unknown",
  revision: "unknown",
  user: "unknown",
  date: "unknown",
};

const ARCH: Record<string, string> = { x86_64: "amd64", aarch64: "arm64" };

/**
 * The `--version` text, in the layout of Prometheus programs
 * (`prometheus --version`), with the Deno, V8 and TypeScript versions where
 * those print the Go version.
 *
 * @param program The program's name, e.g. "pushprox-client".
 * @returns The text, several lines, no trailing newline.
 */
export function versionText(program: string): string {
  const rows: [string, string][] = [
    ["build user", BUILD.user],
    ["build date", BUILD.date],
    ["deno version", Deno.version.deno],
    ["v8 version", Deno.version.v8],
    ["typescript version", Deno.version.typescript],
    ["platform", `${Deno.build.os}/${ARCH[Deno.build.arch] ?? Deno.build.arch}`],
  ];
  return [
    `${program}, version ${VERSION} (branch: ${BUILD.branch}, revision: ${BUILD.revision})`,
    ...rows.map(([name, value]) => `  ${`${name}:`.padEnd(20)}${value}`),
  ].join("\n");
}
