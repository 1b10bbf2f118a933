import assert from "node:assert/strict";
import { targetGroups } from "./service_discovery.ts";

const base = {
  version: "v",
  modules: [],
  protocol: "connect",
  connected: true,
  connectedSince: 0,
  lastScrape: 0,
  inFlight: 0,
};

Deno.test("targetGroups() publishes each client's fqdn and labels", () => {
  const groups = targetGroups([
    { ...base, fqdn: "a.example.com", labels: {} },
    { ...base, fqdn: "b.example.com", labels: { zone: "eu", role: "db" } },
  ]);
  assert.deepEqual(groups.map((g) => g.targets), [["a.example.com"], ["b.example.com"]]);
  const own = (labels: Record<string, string>) =>
    Object.fromEntries(Object.entries(labels).filter(([name]) => !name.startsWith("__meta_")));
  assert.deepEqual(own(groups[0]!.labels), {});
  assert.deepEqual(own(groups[1]!.labels), { zone: "eu", role: "db" });
});

Deno.test("targetGroups() adds __meta_pushprox_client_* labels for relabel rules", () => {
  const [modulesOnly, raw] = targetGroups([
    {
      ...base,
      fqdn: "m.example",
      labels: {},
      modules: ["node", "mysql"],
      modulesOnly: true,
      connected: false,
      version: "0.2.0",
      proxies: ["http://p1:8080", "http://p2:8080"],
    },
    { ...base, fqdn: "r.example", labels: { zone: "eu" } },
  ], { proxy: "pushprox:8080" });
  assert.deepEqual(modulesOnly!.labels, {
    __meta_pushprox_client_modules: ",node,mysql,",
    __meta_pushprox_client_raw_scrapes: "false",
    __meta_pushprox_client_version: "0.2.0",
    __meta_pushprox_client_connected: "false",
    __meta_pushprox_client_protocol: "connect",
    __meta_pushprox_client_proxies: ",http://p1:8080,http://p2:8080,",
    __meta_pushprox_client_proxy: "pushprox:8080",
  });
  assert.equal(raw!.labels.__meta_pushprox_client_raw_scrapes, "true");
  assert.equal(raw!.labels.__meta_pushprox_client_modules, "");
  assert.equal(raw!.labels.zone, "eu");
});
