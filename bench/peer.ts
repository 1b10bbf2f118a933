/**
 * Other programs the benchmark can run side by side with this project's:
 * another proxy and client (`--peer.proxy`, `--peer.client`, e.g. upstream
 * PushProx) and another exporter_exporter (`--peer.exporter`). Each is given
 * as a command template: split at whitespace (no shell, no quoting, so the
 * PID the benchmark watches is the program's own), with placeholders the
 * benchmark fills in:
 *
 * - `{port}`: a free loopback port the program must listen on (proxy,
 *   exporter); `{address}` is `127.0.0.1:{port}`.
 * - `{proxy_url}`: the proxy's URL, `http://127.0.0.1:PORT/` (client);
 *   `{proxy_port}` its port.
 * - `{fqdn}`: the name the client must register (client).
 * - `{metrics_port}`: a free loopback port for the client's own metrics
 *   listener (upstream's `--metrics-addr` defaults to `:9369`).
 * - `{config}`: an exporter_exporter configuration file (`expexp.yaml`
 *   format) listing the benchmark's modules (exporter).
 *
 * An unknown placeholder is an error, so a typo cannot run a half-filled
 * command.
 *
 * @module
 */

import { type Child, spawnChild } from "./process.ts";
import {
  type ClientProcess,
  type ExporterProcess,
  type ProxyProcess,
  waitRegistered,
} from "./stack.ts";
import { errorMessage } from "../lib/error_message.ts";

/** Placeholders a command template may use. */
export const PLACEHOLDERS: readonly string[] = [
  "port",
  "address",
  "proxy_url",
  "proxy_port",
  "fqdn",
  "metrics_port",
  "config",
];

/**
 * Fills a command template's placeholders and splits it into words.
 *
 * @param template The command, e.g. `pushprox-proxy --web.listen-address=:{port}`.
 * @param values Values for the placeholders this use of it provides.
 * @returns The program and its arguments.
 * @throws {TypeError} On an empty template, an unknown placeholder, or one
 * this use does not provide.
 */
export function expandCommand(
  template: string,
  values: Readonly<Record<string, string | number>>,
): string[] {
  const words = template.split(/\s+/).filter((w) => w !== "");
  if (words.length === 0) throw new TypeError("Cannot run an empty command template");
  return words.map((word) =>
    word.replace(/\{([a-z_]+)\}/g, (_, name: string) => {
      if (!PLACEHOLDERS.includes(name)) {
        throw new TypeError(
          `Cannot expand "{${name}}" in "${template}": placeholders are ${
            PLACEHOLDERS.map((p) => `{${p}}`).join(", ")
          }`,
        );
      }
      const value = values[name];
      if (value === undefined) {
        throw new TypeError(
          `Cannot expand "{${name}}" in "${template}": not available here (only ${
            Object.keys(values).map((p) => `{${p}}`).join(", ")
          })`,
        );
      }
      return String(value);
    })
  );
}

/**
 * Returns a loopback port that was free a moment ago, for programs that
 * cannot listen on port 0 and report it.
 *
 * @returns The port.
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Waits until a program accepts TCP connections on a loopback port.
 *
 * @param port The port.
 * @param child The program, to fail fast when it exits.
 * @param timeoutMs Longest wait.
 */
export async function waitListening(
  port: number,
  child: Child,
  timeoutMs = 60_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exited) {
      throw new Error(
        `${child.name} exited before listening on ${port}:\n${child.stderr().slice(-2000)}`,
      );
    }
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`${child.name} did not listen on ${port} within ${timeoutMs} ms`);
}

function spawnTemplate(
  name: string,
  template: string,
  values: Record<string, string | number>,
  cwd: string,
): Child {
  const [command, ...args] = expandCommand(template, values);
  try {
    return spawnChild(name, command!, args, { cwd });
  } catch (error) {
    throw new Error(`Cannot start the ${name} "${command}": ${errorMessage(error)}`, {
      cause: error,
    });
  }
}

/**
 * Starts a peer proxy from its command template and waits until it listens.
 *
 * @param template The `--peer.proxy` template.
 * @param cwd Working directory.
 * @returns The listening proxy.
 */
export async function startPeerProxy(
  template: string,
  cwd: string,
): Promise<ProxyProcess> {
  const port = freePort();
  const child = spawnTemplate("peer proxy", template, {
    port,
    address: `127.0.0.1:${port}`,
  }, cwd);
  try {
    await waitListening(port, child);
  } catch (error) {
    await child.stop(1000);
    throw error;
  }
  return { child, port, inspector: null };
}

/**
 * Starts a peer client from its command template and waits until the proxy
 * lists it in `/clients` (upstream PushProx serves the same document).
 *
 * @param template The `--peer.client` template.
 * @param cwd Working directory.
 * @param proxyPort The proxy's port.
 * @param fqdn The name it must register.
 * @returns The registered client.
 */
export async function startPeerClient(
  template: string,
  cwd: string,
  proxyPort: number,
  fqdn: string,
): Promise<ClientProcess> {
  const child = spawnTemplate("peer client", template, {
    proxy_url: `http://127.0.0.1:${proxyPort}/`,
    proxy_port: proxyPort,
    fqdn,
    metrics_port: freePort(),
  }, cwd);
  try {
    await waitRegistered(proxyPort, fqdn, child);
  } catch (error) {
    await child.stop(1000);
    throw error;
  }
  return { child, inspector: null };
}

/**
 * Starts a peer exporter_exporter from its command template and waits until
 * it listens.
 *
 * @param template The `--peer.exporter` template.
 * @param cwd Working directory.
 * @param config Path of the modules configuration file.
 * @returns The listening exporter.
 */
export async function startPeerExporter(
  template: string,
  cwd: string,
  config: string,
): Promise<ExporterProcess> {
  const port = freePort();
  const child = spawnTemplate("peer exporter", template, {
    port,
    address: `127.0.0.1:${port}`,
    config,
  }, cwd);
  try {
    await waitListening(port, child);
  } catch (error) {
    await child.stop(1000);
    throw error;
  }
  return { child, port };
}
