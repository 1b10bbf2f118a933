/**
 * A client process that dies without a goodbye (kill -9): the proxy notices
 * at once, frees what it held, and answers scrapes for it without waiting.
 */

import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { RegistryService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import {
  proxiedGet,
  startClientProcess,
  startProxyProcess,
  type TestProcess,
  waitUntil,
} from "../support.ts";

Deno.test({
  name: "a killed client is noticed at once and its scrapes fail fast",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const target = createServer((_req, res) => res.end("up 1\n"));
    await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
    const targetPort = (target.address() as AddressInfo).port;
    try {
      const proxy = await startProxyProcess(["--registration.timeout=2s"]);
      processes.push(proxy.process);
      const client = startClientProcess([`--proxy-url=${proxy.url}`, "--fqdn=localhost"]);
      processes.push(client);
      await client.waitFor(/Registered with the proxy/);
      const url = `http://localhost:${targetPort}/metrics`;
      assert.equal((await proxiedGet(proxy.port, url)).status, 200);

      const registry = createClient(
        RegistryService,
        createConnectTransport({ baseUrl: proxy.url, httpVersion: "1.1" }),
      );
      const killedAt = Date.now();
      client.kill("SIGKILL");
      await client.status;
      const noticedWithin = performance.now();
      const dead = await waitUntil(
        async () => {
          const { clients } = await registry.listClients({});
          return clients.length === 1 && !clients[0]!.connected ? clients[0] : undefined;
        },
        3000,
        "the proxy to notice the dead stream",
      );
      assert.ok(performance.now() - noticedWithin < 2000);
      // Listed as disconnected since the kill (the status page counts from it).
      const disconnectedAt = timestampMs(dead.disconnectedAt!);
      assert.ok(
        disconnectedAt >= killedAt - 100 && disconnectedAt - killedAt < 2000,
        `disconnected ${disconnectedAt - killedAt} ms after the kill`,
      );

      const started = performance.now();
      const response = await proxiedGet(proxy.port, url, {
        "x-prometheus-scrape-timeout-seconds": "10",
      });
      assert.equal(response.status, 503);
      assert.ok(performance.now() - started < 1000, "no waiting for the timeout");

      // Gone from service discovery after --registration.timeout.
      await waitUntil(
        async () => {
          const sd = await (await fetch(`${proxy.url}/clients`)).json();
          return sd.length === 0 ? true : undefined;
        },
        5000,
        "the client to leave /clients",
      );
      const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
      assert.match(metrics, /^pushprox_proxy_scrapes_in_flight 0$/m);
      assert.match(metrics, /^pushprox_proxy_clients 0$/m);
    } finally {
      await Promise.all(processes.map((p) => p.stop()));
      target.close();
    }
  },
});
