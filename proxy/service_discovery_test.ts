import assert from "node:assert/strict";
import { targetGroups } from "./service_discovery.ts";

Deno.test("targetGroups() publishes each client's fqdn and labels", () => {
  const base = {
    version: "v",
    modules: [],
    protocol: "connect",
    connected: true,
    connectedSince: 0,
    lastScrape: 0,
    inFlight: 0,
  };
  const groups = targetGroups([
    { ...base, fqdn: "a.example.com", labels: {} },
    { ...base, fqdn: "b.example.com", labels: { zone: "eu", role: "db" } },
  ]);
  assert.equal(
    JSON.stringify(groups),
    '[{"targets":["a.example.com"],"labels":{}},' +
      '{"targets":["b.example.com"],"labels":{"zone":"eu","role":"db"}}]',
  );
});
