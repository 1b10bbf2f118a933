/**
 * Debian's Prometheus and node_exporter for end-to-end tests: where they
 * are, why a test skips without them, starting them on ephemeral loopback
 * ports, and querying Prometheus' HTTP API.
 *
 * @module
 */

import { freePort, hasExecutable, spawn, type TestProcess } from "./support.ts";

/** Debian's `prometheus` package. */
export const PROMETHEUS = "/usr/bin/prometheus";
/** Debian's `prometheus-node-exporter` package. */
export const NODE_EXPORTER = "/usr/bin/prometheus-node-exporter";

/**
 * Says why a test cannot run (and warns once), or "" when it can.
 *
 * @param test The test's short name, for the warning.
 * @param binaries Executables the test needs.
 * @returns The reason, or "".
 */
export function skipReason(test: string, binaries: readonly string[]): string {
  const missing = binaries.filter((path) => !hasExecutable(path));
  if (missing.length === 0) return "";
  const reason = `${
    missing.join(", ")
  } not installed (apt-get install prometheus prometheus-node-exporter)`;
  console.warn(`SKIPPED ${test}: ${reason}`);
  return reason;
}

/** One sample of an instant query's result. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/**
 * Runs an instant query against Prometheus' HTTP API.
 *
 * @param port Prometheus' port on 127.0.0.1.
 * @param expr The PromQL expression.
 * @returns The result vector.
 */
export async function queryPrometheus(port: number, expr: string): Promise<PromSample[]> {
  const url = `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`;
  const body = await (await fetch(url)).json();
  if (body.status !== "success") throw new Error(`query ${expr} failed: ${JSON.stringify(body)}`);
  return body.data.result as PromSample[];
}

/**
 * Starts Prometheus with `config` (written to `dir`), waits until it is ready.
 *
 * @param dir A temporary directory for the config and the TSDB.
 * @param config The prometheus.yml text.
 * @param name Distinguishes several servers in one directory.
 * @returns The process and its port.
 */
export async function startPrometheus(
  dir: string,
  config: string,
  name = "prometheus",
): Promise<{ process: TestProcess; port: number }> {
  const port = await freePort();
  await Deno.writeTextFile(`${dir}/${name}.yml`, config);
  const process = spawn(PROMETHEUS, [
    `--config.file=${dir}/${name}.yml`,
    `--storage.tsdb.path=${dir}/${name}-data`,
    `--web.listen-address=127.0.0.1:${port}`,
  ]);
  try {
    await process.waitFor(/Server is ready to receive web requests/, 30_000);
  } catch (error) {
    await process.stop();
    throw error;
  }
  return { process, port };
}

/**
 * Starts node_exporter on 127.0.0.1 with a few cheap collectors.
 *
 * @param collectors Collectors to enable.
 * @returns The process and its port.
 */
export async function startNodeExporter(
  collectors: readonly string[] = ["cpu", "meminfo", "loadavg"],
): Promise<{ process: TestProcess; port: number }> {
  const port = await freePort();
  const process = spawn(NODE_EXPORTER, [
    `--web.listen-address=127.0.0.1:${port}`,
    "--collector.disable-defaults",
    ...collectors.map((c) => `--collector.${c}`),
  ]);
  await process.waitFor(/Listening on/);
  return { process, port };
}
