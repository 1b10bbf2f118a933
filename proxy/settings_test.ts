import assert from "node:assert/strict";
import { parseFlags } from "../lib/flags.ts";
import { connectionLimits, PROXY_FLAGS, toProxyOptions } from "./settings.ts";

const settings = (...args: string[]) => toProxyOptions(parseFlags(PROXY_FLAGS, args));

Deno.test("toProxyOptions() gives the documented defaults", () => {
  const s = settings();
  assert.deepEqual(s.listenAddress, { hostname: "", port: 8080 });
  assert.equal(s.listenAddressText, ":8080");
  assert.equal(s.grpcListenAddress, null);
  assert.deepEqual(s.log, { level: "info", format: "logfmt" });
  assert.deepEqual(s.security, {
    webConfigFile: "",
    authConfigFile: "",
    reloadIntervalMs: 5_000,
    maxFailuresPerSource: 10,
    failureWindowMs: 60_000,
  });
  assert.equal(s.proxy.defaultScrapeTimeoutMs, 15_000);
  assert.equal(s.proxy.maxScrapeTimeoutMs, 300_000);
  assert.equal(s.proxy.legacyProtocol, true);
  assert.equal(s.proxy.maxClients, 10_000);
  assert.equal(s.drainTimeoutMs, 30_000);
  assert.deepEqual(s.connections, {
    maxConnections: undefined,
    maxPerSource: undefined,
    acceptCheckIntervalMs: 5_000,
  });
  // A request may last as long as the longest scrape and 30 s more.
  assert.deepEqual(s.serve, {
    requestTimeoutMs: 330_000,
    headersTimeoutMs: 10_000,
    idleTimeoutMs: 65_000,
    maxHeaderBytes: 16_384,
  });
  assert.deepEqual(s.grpc, {
    requestTimeoutMs: 330_000,
    headersTimeoutMs: 10_000,
    idleTimeoutMs: 65_000,
  });
});

Deno.test("toProxyOptions() passes each flag to the part that takes it", () => {
  const s = settings(
    "--web.listen-address=127.0.0.1:9",
    "--grpc.listen-address=:9090",
    "--scrape.max-timeout=1m",
    "--no-legacy.enabled",
    "--log.level=warning",
    "--log.format=json",
    "--web.max-connections=100",
    "--auth.config.file=auth.yml",
    "--web.body-idle-timeout=0",
  );
  assert.deepEqual(s.listenAddress, { hostname: "127.0.0.1", port: 9 });
  assert.deepEqual(s.grpcListenAddress, { hostname: "", port: 9090 });
  assert.equal(s.grpcListenAddressText, ":9090");
  assert.equal(s.proxy.maxScrapeTimeoutMs, 60_000);
  assert.equal(s.serve.requestTimeoutMs, 90_000);
  assert.equal(s.proxy.legacyProtocol, false);
  assert.equal(s.proxy.bodyIdleTimeoutMs, 0);
  assert.deepEqual(s.log, { level: "warn", format: "json" });
  assert.equal(s.connections.maxConnections, 100);
  assert.equal(s.security.authConfigFile, "auth.yml");
});

Deno.test("toProxyOptions() refuses listen addresses without a port", () => {
  assert.throws(
    () => settings("--web.listen-address=nonsense"),
    { name: "SyntaxError", message: /Cannot parse listen address "nonsense"/ },
  );
  assert.throws(() => settings("--grpc.listen-address=bad"), SyntaxError);
});

Deno.test("connectionLimits() defaults to the fd limit less a reserve, half of it per source", () => {
  const s = settings();
  assert.deepEqual(connectionLimits(s.connections, 1024), {
    maxConnections: 1024 - 103,
    maxPerSource: 461,
  });
  assert.deepEqual(connectionLimits(s.connections, null), {
    maxConnections: 10_000,
    maxPerSource: 5_000,
  });
  const given = settings("--web.max-connections=0", "--web.max-connections-per-source=7");
  assert.deepEqual(connectionLimits(given.connections, 1024), {
    maxConnections: 0,
    maxPerSource: 7,
  });
  assert.deepEqual(
    connectionLimits(settings("--web.max-connections=10").connections, 1024),
    { maxConnections: 10, maxPerSource: 5 },
  );
});
