/**
 * What the upstream-client tests share: starting doubles of the Go client
 * next to a proxy stack, a target, and reading the proxy's client list.
 *
 * @module
 */

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { RegistryService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import {
  type LegacyClient,
  type LegacyClientOptions,
  startLegacyClient,
} from "../legacy_client_double.ts";
import { waitUntil } from "../support.ts";
import { type Stack } from "../stack.ts";

export const TEXT = "# TYPE up gauge\nup 1\n";

export const encoder = new TextEncoder();

export const decoder = new TextDecoder();

/** Starts the double against the stack's proxy and waits until it is listed. */
export async function startDouble(
  stack: Stack,
  doubles: LegacyClient[],
  options: Partial<LegacyClientOptions> & { fqdn: string },
): Promise<LegacyClient> {
  const client = startLegacyClient({
    proxyUrl: stack.proxyUrl,
    useLocalhost: true,
    retryInitialWaitMs: 50,
    retryMaxWaitMs: 200,
    ...options,
  });
  doubles.push(client);
  await waitUntil(
    () =>
      stack.proxy.coordinator.listClients().some((c) =>
        c.fqdn === options.fqdn && c.connected && c.protocol === "legacy"
      ) || undefined,
    5_000,
    `legacy client ${options.fqdn} to register`,
  );
  return client;
}

/**
 * A list for {@linkcode startDouble} to add to; `await using` stops every
 * double in it at once, as {@linkcode stopAll} does before closing the stack.
 *
 * @returns The empty list, disposable.
 */
export function doubleList(): LegacyClient[] & AsyncDisposable {
  const doubles: LegacyClient[] = [];
  return Object.assign(doubles, {
    async [Symbol.asyncDispose]() {
      await Promise.all(doubles.map((d) => d.stop()));
    },
  });
}

export async function stopAll(stack: Stack, doubles: LegacyClient[]): Promise<void> {
  await Promise.all(doubles.map((d) => d.stop()));
  await stack.close();
}

export async function startTarget(handler: Parameters<typeof createServer>[1]): Promise<{
  server: Server;
  port: number;
  close(): Promise<void>;
}> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export function text(body: Uint8Array): string {
  return decoder.decode(body);
}

export function listClients(stack: Stack) {
  return createClient(
    RegistryService,
    createConnectTransport({ baseUrl: stack.proxyUrl, httpVersion: "1.1" }),
  ).listClients({});
}
