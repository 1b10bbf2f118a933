import assert from "node:assert/strict";
import { Code, ConnectError, createHandlerContext } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  RegistryService,
  WatchClientsRequestSchema,
  type WatchClientsResponse,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import { createCoordinator } from "../core/coordinator.ts";
import { createRegistryService } from "./registry_service.ts";

function watchContext(signal: AbortSignal) {
  return createHandlerContext({
    service: RegistryService,
    method: RegistryService.method.watchClients,
    protocolName: "connect",
    requestMethod: "POST",
    url: "http://localhost/pushprox.v1.RegistryService/WatchClients",
    requestSignal: signal,
  });
}

function setup() {
  const clock = { t: 1_000_000 };
  const coordinator = createCoordinator({ registrationTimeoutMs: 60_000, now: () => clock.t });
  return { coordinator, clock };
}

Deno.test("watchClients() starts with a snapshot, then streams changes", async () => {
  const { coordinator, clock } = setup();
  coordinator.register({ fqdn: "a", labels: {}, version: "1", modules: [], protocol: "connect" });
  const service = createRegistryService(coordinator, { statsIntervalMs: 60_000 });
  const stop = new AbortController();
  const stream = service.watchClients(create(WatchClientsRequestSchema), watchContext(stop.signal))[
    Symbol.asyncIterator
  ]();
  const next = async () => (await stream.next()).value as WatchClientsResponse;
  const first = await next();
  assert.equal(first.event.case, "snapshot");
  assert.deepEqual(
    first.event.case === "snapshot" && first.event.value.clients!.map((c) => c.fqdn),
    ["a"],
  );
  const b = coordinator.register({
    fqdn: "b",
    labels: {},
    version: "1",
    modules: [],
    protocol: "legacy",
    peerAddress: "10.0.0.1:9",
  });
  clock.t += 500;
  coordinator.recordScrapeResult("b", { status: 502, error: "refused", durationMs: 3 });
  b.close();
  const kinds = [];
  for (let i = 0; i < 3; i++) {
    const message = await next();
    kinds.push(message.event.case);
    if (message.event.case === "connected") {
      assert.equal(message.event.value.peerAddress, "10.0.0.1:9");
    }
    if (message.event.case === "scraped") {
      assert.equal(message.event.value.outcome?.status, 502);
      assert.equal(message.event.value.outcome?.error, "refused");
    }
    if (message.event.case === "disconnected") {
      assert.equal(Number(message.event.value.disconnectedAt?.seconds), 1000);
    }
  }
  assert.deepEqual(kinds, ["connected", "scraped", "disconnected"]);
  // Waiting for the next change ends when the call is cancelled.
  const pending = stream.next();
  stop.abort();
  assert.equal((await pending).done, true);
});

Deno.test("watchClients() drops a watcher that falls behind with ResourceExhausted", async () => {
  const { coordinator } = setup();
  const service = createRegistryService(coordinator, {
    maxQueuedEvents: 4,
    statsIntervalMs: 60_000,
  });
  const stop = new AbortController();
  const stream = service.watchClients(create(WatchClientsRequestSchema), watchContext(stop.signal))[
    Symbol.asyncIterator
  ]();
  assert.equal(((await stream.next()).value as WatchClientsResponse).event.case, "snapshot");
  // Not read while 5 changes happen: one more than the queue holds.
  for (let i = 0; i < 5; i++) {
    coordinator.register({ fqdn: `c${i}`, labels: {}, version: "", modules: [], protocol: "x" });
  }
  await assert.rejects(stream.next(), (error) => {
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, Code.ResourceExhausted);
    assert.match(error.message, /more than 4 changes/);
    return true;
  });
  // The coordinator no longer calls the dropped watcher.
  coordinator.register({ fqdn: "late", labels: {}, version: "", modules: [], protocol: "x" });
  stop.abort();
});
