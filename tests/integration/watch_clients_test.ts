/**
 * RegistryService.WatchClients end to end: a snapshot first, then events as
 * a real client connects, is scraped through the proxy and leaves; through
 * connect-es over Connect and gRPC-Web, through `buf curl` (a foreign
 * client following the stream), and only for readers.
 */

import assert from "node:assert/strict";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { RegistryService, type WatchClientsResponse } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { DENO, denoEnv, proxiedGet, ROOT, waitUntil } from "../support.ts";
import { startStack } from "../stack.ts";

const BODY = "up 1\n";

for (const protocol of ["connect", "grpc-web"] as const) {
  Deno.test(`WatchClients over ${protocol}: snapshot, connect, scrape, disconnect`, async () => {
    const stack = await startStack((_req, res) => res.end(BODY));
    const stop = new AbortController();
    try {
      const options = { baseUrl: stack.proxyUrl, httpVersion: "1.1" as const };
      const transport = protocol === "connect"
        ? createConnectTransport(options)
        : createGrpcWebTransport(options);
      const registry = createClient(RegistryService, transport);
      const events: WatchClientsResponse[] = [];
      const watching = (async () => {
        for await (const message of registry.watchClients({}, { signal: stop.signal })) {
          events.push(message);
        }
      })().catch((error) => {
        if (!stop.signal.aborted) throw error;
      });
      await waitUntil(() => events.length > 0 || undefined, 5_000, "the snapshot");
      assert.equal(events[0]!.event.case, "snapshot");

      const agent = await stack.startClient({ fqdn: "localhost", labels: { zone: "eu" } });
      assert.equal((await proxiedGet(stack.proxyPort, stack.targetUrl())).status, 200);
      await agent.stop();
      await waitUntil(
        () => events.some((e) => e.event.case === "disconnected") || undefined,
        5_000,
        "the disconnect event",
      );
      const kinds = events.map((e) => e.event.case).filter((k) => k !== "stats");
      assert.deepEqual(kinds, ["snapshot", "connected", "scraped", "disconnected"]);
      const connected = events.find((e) => e.event.case === "connected")!.event;
      assert.ok(connected.case === "connected");
      assert.deepEqual(connected.value.labels, { zone: "eu" });
      assert.match(connected.value.peerAddress, /^127\.0\.0\.1:\d+$/);
      const scraped = events.find((e) => e.event.case === "scraped")!.event;
      assert.ok(scraped.case === "scraped");
      assert.equal(scraped.value.fqdn, "localhost");
      assert.equal(scraped.value.outcome?.status, 200);
      assert.equal(scraped.value.outcome?.bytes, BigInt(BODY.length));
      assert.equal(scraped.value.outcome?.error, "");
      const gone = events.find((e) => e.event.case === "disconnected")!.event;
      assert.ok(gone.case === "disconnected" && gone.value.disconnectedAt !== undefined);
      stop.abort();
      await watching;
    } finally {
      stop.abort();
      await stack.close();
    }
  });
}

Deno.test({
  name: "buf curl follows WatchClients (Connect and gRPC-Web)",
  sanitizeResources: false,
  async fn() {
    for (const protocol of ["connect", "grpcweb"]) {
      const stack = await startStack((_req, res) => res.end(BODY));
      const child = new Deno.Command(DENO, {
        args: [
          "run",
          "--lock=deno.dev.lock",
          "--frozen",
          "-A",
          "npm:@bufbuild/buf@1.74.0",
          "curl",
          "--schema",
          "proto",
          "--protocol",
          protocol,
          "--data",
          "{}",
          `${stack.proxyUrl}/pushprox.v1.RegistryService/WatchClients`,
        ],
        cwd: ROOT,
        env: denoEnv(),
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let text = "";
      let errors = "";
      const decoder = new TextDecoder();
      const reading = Promise.all([
        (async () => {
          for await (const chunk of child.stdout) text += decoder.decode(chunk, { stream: true });
        })(),
        (async () => {
          for await (const chunk of child.stderr) errors += new TextDecoder().decode(chunk);
        })(),
      ]);
      const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
      try {
        // buf curl follows the stream once it printed the snapshot.
        await waitUntil(() => text.includes('"snapshot"') || undefined, 60_000, "the snapshot");
        await stack.startClient({ fqdn: "localhost" });
        assert.equal((await proxiedGet(stack.proxyPort, stack.targetUrl())).status, 200);
        await waitUntil(() => text.includes('"scraped"') || undefined, 10_000, "the scrape event");
      } finally {
        // Ending the proxy ends the stream, and buf curl with it.
        await stack.close();
        await reading;
        await child.status;
        clearTimeout(timer);
      }
      assert.ok(errors === "" || /unavailable|EOF|closed|reset/i.test(errors), errors);
      assert.match(text, /"snapshot"/, protocol);
      assert.match(text, /"connected":\s*\{\s*"fqdn":\s*"localhost"/, text);
      assert.match(text, /"scraped":\s*\{\s*"fqdn":\s*"localhost"/, text);
      assert.match(text, /"status":\s*200/, text);
    }
  },
});

Deno.test("WatchClients needs the reader role", async () => {
  const bcrypt = (await import("bcryptjs")).default;
  const { startSecureProxy } = await import("../secure_stack.ts");
  const proxy = await startSecureProxy({
    web: `basic_auth_users:\n  grafana: "${bcrypt.hashSync("grafana-secret", 4)}"\n`,
    auth:
      "clients:\n  open: true\nscrapers:\n  open: true\nreaders:\n  basic_auth_users: [grafana]\n",
  });
  try {
    const watch = (authorization?: string) =>
      createClient(
        RegistryService,
        createConnectTransport({ baseUrl: proxy.url, httpVersion: "1.1" }),
      ).watchClients({}, authorization ? { headers: { authorization } } : {});
    await assert.rejects(
      async () => {
        for await (const _ of watch()) break;
      },
      (error) => error instanceof ConnectError && error.code === Code.Unauthenticated,
    );
    const basic = "Basic " + btoa("grafana:grafana-secret");
    for await (const message of watch(basic)) {
      assert.equal(message.event.case, "snapshot");
      break;
    }
  } finally {
    await proxy.close();
  }
});
