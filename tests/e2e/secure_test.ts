/**
 * The recommended production set-up, end to end with real parts: the proxy
 * serves TLS; clients authenticate with client certificates that name their
 * fqdn and serve modules only; Debian's Prometheus 2.42 authenticates as a
 * scraper with basic auth in proxy_url (sent as Proxy-Authorization) or with
 * its client certificate, reads /clients with basic auth, and scrapes
 * node_exporter through a module. A raw port scrape is refused by the client.
 */

import assert from "node:assert/strict";
import bcrypt from "bcryptjs";
import { createTestCa, OPENSSL_MISSING } from "../certs.ts";
import {
  freePort,
  spawn,
  startClientProcess,
  startProxyProcess,
  type TestProcess,
  waitUntil,
} from "../support.ts";
import { NODE_EXPORTER, PROMETHEUS, queryPrometheus as query, skipReason } from "../prometheus.ts";

const skip = skipReason("e2e secure", [PROMETHEUS, NODE_EXPORTER]) || OPENSSL_MISSING;
if (skip !== null && skip === OPENSSL_MISSING) console.warn(`SKIPPED e2e secure: ${skip}`);

async function targetErrors(promPort: number): Promise<string> {
  const body = await (await fetch(`http://127.0.0.1:${promPort}/api/v1/targets`)).json();
  return JSON.stringify(
    body.data.activeTargets.map((
      t: { labels: { job: string }; health: string; lastError: string },
    ) => [
      t.labels.job,
      t.health,
      t.lastError,
    ]),
  );
}

Deno.test({
  name:
    "production set-up: TLS proxy, mTLS modules-only clients, Prometheus with basic auth or a client certificate",
  ignore: skip !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const dir = await Deno.makeTempDir({ prefix: "pushprox-e2e-secure-" });
    try {
      const ca = await createTestCa(dir);
      await ca.issue("proxy", {
        cn: "localhost",
        sans: ["DNS:localhost", "IP:127.0.0.1"],
        usage: "server",
      });
      await ca.issue("client", { cn: "localhost", sans: ["DNS:localhost"], usage: "client" });
      await ca.issue("prometheus", { cn: "prometheus", usage: "client" });
      const hash = bcrypt.hashSync("prom-secret", 10);
      await Deno.writeTextFile(
        `${dir}/web.yml`,
        `tls_server_config:
  cert_file: proxy.pem
  key_file: proxy.key
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: ca.pem
basic_auth_users:
  prometheus: "${hash}"
`,
      );
      await Deno.writeTextFile(
        `${dir}/auth.yml`,
        `clients:
  certificates: true
scrapers:
  basic_auth_users: [prometheus]
  certificates: [prometheus]
readers:
  basic_auth_users: [prometheus]
  certificates: [prometheus]
`,
      );

      const nodePort = await freePort();
      const nodeExporter = spawn(NODE_EXPORTER, [
        `--web.listen-address=127.0.0.1:${nodePort}`,
        "--collector.disable-defaults",
        "--collector.loadavg",
        "--collector.meminfo",
      ]);
      processes.push(nodeExporter);
      await nodeExporter.waitFor(/Listening on/);

      const proxy = await startProxyProcess([
        `--web.config.file=${dir}/web.yml`,
        `--auth.config.file=${dir}/auth.yml`,
      ]);
      processes.push(proxy.process);
      assert.doesNotMatch(proxy.process.output(), /Authentication is OFF/);
      const proxyUrl = `https://localhost:${proxy.port}`;

      await Deno.writeTextFile(
        `${dir}/expexp.yml`,
        `modules:
  node:
    method: http
    http:
      port: ${nodePort}
`,
      );
      const client = startClientProcess([
        `--proxy-url=${proxyUrl}/`,
        "--fqdn=localhost",
        `--tls.cacert=${dir}/ca.pem`,
        `--tls.cert=${dir}/client.pem`,
        `--tls.key=${dir}/client.key`,
        `--config.file=${dir}/expexp.yml`,
      ]);
      processes.push(client);
      await client.waitFor(/Registered with the proxy/, 20_000);

      const promPort = await freePort();
      const tls = `    tls_config:
      ca_file: ${dir}/ca.pem`;
      await Deno.writeTextFile(
        `${dir}/prometheus.yml`,
        `
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: basic_auth
    proxy_url: https://prometheus:prom-secret@localhost:${proxy.port}
${tls}
    metrics_path: /proxy
    params:
      module: [node]
    static_configs:
      - targets: ["localhost:9999"]
  - job_name: client_cert
    proxy_url: ${proxyUrl}
${tls}
      cert_file: ${dir}/prometheus.pem
      key_file: ${dir}/prometheus.key
    metrics_path: /proxy
    params:
      module: [node]
    static_configs:
      - targets: ["localhost:9999"]
  - job_name: http_sd
    proxy_url: https://prometheus:prom-secret@localhost:${proxy.port}
${tls}
    metrics_path: /proxy
    params:
      module: [node]
    http_sd_configs:
      - url: ${proxyUrl}/clients
        refresh_interval: 1s
        basic_auth:
          username: prometheus
          password: prom-secret
${tls.replaceAll("\n", "\n    ").replace(/^/, "    ")}
    relabel_configs:
      - source_labels: [__address__]
        target_label: __address__
        replacement: "$1:9999"
  - job_name: no_credentials
    proxy_url: ${proxyUrl}
${tls}
    metrics_path: /proxy
    params:
      module: [node]
    static_configs:
      - targets: ["localhost:9999"]
  - job_name: raw_port
    proxy_url: https://prometheus:prom-secret@localhost:${proxy.port}
${tls}
    static_configs:
      - targets: ["localhost:${nodePort}"]
  - job_name: proxy_metrics
    scheme: https
    basic_auth:
      username: prometheus
      password: prom-secret
${tls}
    static_configs:
      - targets: ["localhost:${proxy.port}"]
`,
      );
      const prometheus = spawn(PROMETHEUS, [
        `--config.file=${dir}/prometheus.yml`,
        `--storage.tsdb.path=${dir}/data`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ]);
      processes.push(prometheus);
      await prometheus.waitFor(/Server is ready to receive web requests/, 30_000);

      const upOf = async (job: string) => {
        const result = await query(promPort, `up{job="${job}"}`);
        return result.length === 1 ? result[0]!.value[1] : undefined;
      };
      for (const job of ["basic_auth", "client_cert", "http_sd", "proxy_metrics"]) {
        await waitUntil(
          async () => (await upOf(job)) === "1" ? true : undefined,
          30_000,
          `up{job="${job}"} == 1`,
        ).catch(async (error) => {
          throw new Error(`${error.message}; targets: ${await targetErrors(promPort)}`);
        });
      }
      const loads = await query(promPort, `node_load1{job="basic_auth"}`);
      assert.equal(loads.length, 1, "node_exporter's metrics arrive through the module");
      // Refusals: no credentials (407 from the proxy), a raw port (403 from the modules-only client).
      for (const job of ["no_credentials", "raw_port"]) {
        await waitUntil(
          async () => (await upOf(job)) === "0" ? true : undefined,
          15_000,
          `up{job="${job}"} == 0`,
        );
      }
      const errors = await targetErrors(promPort);
      assert.match(errors, /"no_credentials","down","[^"]*407/);
      assert.match(errors, /"raw_port","down","[^"]*403/);
      await waitUntil(
        async () => {
          const failures = await query(
            promPort,
            `pushprox_proxy_auth_failures_total{role="scraper",reason="missing"}`,
          );
          return Number(failures[0]?.value[1]) >= 1 ? true : undefined;
        },
        15_000,
        "the proxy's count of refused scrapes, scraped by Prometheus",
      );
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      await Deno.remove(dir, { recursive: true });
    }
  },
});
