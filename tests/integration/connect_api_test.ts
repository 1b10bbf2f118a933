/**
 * The typed API for programs other than clients: ListClients through a
 * Connect client, and through a foreign one, `buf curl`.
 */

import assert from "node:assert/strict";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { ClientService, RegistryService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { bufCurlListClients, proxiedGet } from "../support.ts";
import { startStack } from "../stack.ts";

Deno.test("ListClients returns typed client records", async () => {
  await using stack = await startStack((_req, res) => res.end("up 1\n"));
  const before = Date.now();
  await stack.startClient({ fqdn: "localhost", labels: { zone: "eu" } });
  await proxiedGet(stack.proxyPort, stack.targetUrl());
  for (const useBinaryFormat of [true, false]) {
    const registry = createClient(
      RegistryService,
      createConnectTransport({ baseUrl: stack.proxyUrl, httpVersion: "1.1", useBinaryFormat }),
    );
    const { clients } = await registry.listClients({});
    assert.equal(clients.length, 1);
    const client = clients[0]!;
    assert.equal(client.fqdn, "localhost");
    assert.deepEqual(client.labels, { zone: "eu" });
    assert.equal(client.connected, true);
    assert.equal(client.protocol, "connect");
    assert.equal(client.inFlight, 0);
    assert.match(client.version, /^\d+\.\d+\.\d+/);
    assert.ok(timestampMs(client.connectedSince!) >= before - 1000);
    assert.ok(
      client.lastScrape && timestampMs(client.lastScrape) >= timestampMs(client.connectedSince!),
    );
  }
});

Deno.test({
  name: "buf curl (a foreign Connect client) calls ListClients",
  sanitizeResources: false,
  async fn() {
    await using stack = await startStack((_req, res) => res.end("up 1\n"));
    await stack.startClient({ fqdn: "localhost", labels: { zone: "eu" } });
    for (const protocol of ["connect", "grpcweb"]) {
      const body = await bufCurlListClients(stack.proxyUrl, ["--protocol", protocol]);
      assert.equal(body.clients?.length, 1, protocol);
      assert.equal(body.clients![0]!.fqdn, "localhost");
      assert.deepEqual(body.clients![0]!.labels, { zone: "eu" });
      assert.equal(body.clients![0]!.connected, true);
    }
  },
});

Deno.test("idle Poll streams get heartbeats at the configured interval", async () => {
  await using stack = await startStack((_req, res) => res.end("up 1\n"), {
    heartbeatIntervalMs: 50,
  });
  const client = createClient(
    ClientService,
    createConnectTransport({
      baseUrl: stack.proxyUrl,
      httpVersion: "1.1",
      useBinaryFormat: true,
    }),
  );
  const controller = new AbortController();
  const kinds: string[] = [];
  const started = Date.now();
  try {
    for await (const message of client.poll({ fqdn: "idle" }, { signal: controller.signal })) {
      kinds.push(message.message.case ?? "none");
      if (kinds.length === 5) controller.abort();
    }
  } catch (error) {
    assert.ok(controller.signal.aborted, String(error));
  }
  assert.deepEqual(kinds, ["registered", "heartbeat", "heartbeat", "heartbeat", "heartbeat"]);
  assert.ok(Date.now() - started >= 180, "heartbeats are paced, not a busy loop");
});
