/**
 * Log lines answer an operator's questions: who registered from where with
 * which labels, why and after how long a stream closed, how a scrape ended
 * (status, bytes, duration), refused scrapes warned once rather than on every
 * scrape, durations in Prometheus' units, a busy --metrics-addr named. The
 * real programs with their tasks' flags, at --log.level=debug.
 */

import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  DENO,
  denoEnv,
  processList,
  proxiedGet,
  spawn,
  taskArgs,
  type TestProcess,
  waitUntil,
} from "../support.ts";
import { stopping } from "../fixture.ts";

Deno.test({
  name: "register, scrape-end, refused-scrape and stream-close log lines",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const target = createServer((_req, res) => res.end("# TYPE demo gauge\ndemo 1\n"));
    try {
      await new Promise<void>((resolve) => target.listen(0, "127.0.0.1", resolve));
      const targetPort = (target.address() as AddressInfo).port;
      const proxy = spawn(DENO, [
        ...taskArgs("proxy"),
        "--web.listen-address=127.0.0.1:0",
        "--log.level=debug",
      ], { env: denoEnv() });
      processes.push(proxy);
      const port = Number(
        (await proxy.waitFor(/msg="Listening on" address=127\.0\.0\.1:(\d+)/, 60_000))[1],
      );
      const client = spawn(DENO, [
        ...taskArgs("client"),
        `--proxy-url=http://127.0.0.1:${port}/`,
        "--fqdn=localhost",
        "--label=site=e2e",
        "--label=role=db",
        `--allow-port=${targetPort}`,
        "--metrics-addr=",
        "--log.level=debug",
      ], { env: denoEnv() });
      processes.push(client);
      await client.waitFor(/Registered with the proxy/, 60_000);

      const registered = await proxy.waitFor(/msg="Client registered".*/);
      assert.match(registered[0], /fqdn=localhost/);
      assert.match(registered[0], /peer=127\.0\.0\.1:\d+/);
      assert.match(registered[0], /labels="\{role=\\"db\\", site=\\"e2e\\"\}"/);
      assert.doesNotMatch(registered[0], /modules=/);

      const ok = await proxiedGet(port, `http://localhost:${targetPort}/metrics`);
      assert.equal(ok.status, 200);
      const proxyEnd = await proxy.waitFor(/msg="Scrape finished".*status=200.*/);
      assert.match(proxyEnd[0], /target=http:\/\/localhost:\d+\/metrics/);
      assert.match(proxyEnd[0], /bytes=25\b/); // "# TYPE demo gauge\ndemo 1\n"
      assert.match(proxyEnd[0], /duration=\d+(\.\d+)?(ms|s)\b/);
      const clientEnd = await client.waitFor(/msg="Scrape finished".*status=200.*/);
      assert.match(clientEnd[0], /duration=\d+(\.\d+)?(ms|s)\b/);
      assert.match(client.output(), /msg=Scraping .*timeout=\d+(\.\d+)?s\b/);
      assert.doesNotMatch(client.output(), /timeout_ms=/);

      // A port the client may not scrape: 403 on every scrape, one warning.
      for (let i = 0; i < 3; i++) {
        const refused = await proxiedGet(port, `http://localhost:1/metrics`);
        assert.equal(refused.status, 403);
      }
      await waitUntil(
        () =>
          (client.output().match(/msg="Scrape failed".*status=403/g)?.length ?? 0) >= 3 ||
          undefined,
        10_000,
        "three refused scrapes logged",
      );
      const failed = client.output().match(/level=\w+ msg="Scrape failed".*status=403.*/g)!;
      assert.equal(failed.filter((l) => l.includes("level=warn")).length, 1, failed.join("\n"));
      assert.equal(failed.filter((l) => l.includes("level=debug")).length, 2, failed.join("\n"));

      await client.stop();
      const closed = await proxy.waitFor(/msg="Client stream closed".*/);
      assert.match(closed[0], /reason="client went away"/);
      assert.match(closed[0], /lifetime=\d+(\.\d+)?(ms|s)\b|lifetime=\d+m/);
      assert.match(closed[0], /peer=127\.0\.0\.1:\d+/);
    } finally {
      await Promise.all(processes.map((p) => p.stop()));
      target.close();
    }
  },
});

Deno.test({
  name: "a busy --metrics-addr is named in the client's error",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const busy = createServer(() => {});
    try {
      await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
      const busyPort = (busy.address() as AddressInfo).port;
      const client = spawn(DENO, [
        ...taskArgs("client"),
        "--proxy-url=http://127.0.0.1:9/",
        "--fqdn=localhost",
        `--metrics-addr=127.0.0.1:${busyPort}`,
      ], { env: denoEnv() });
      const timer = setTimeout(() => client.kill("SIGKILL"), 60_000);
      const status = await client.status.finally(() => clearTimeout(timer));
      assert.equal(status.code, 1, client.output());
      assert.match(
        client.output(),
        new RegExp(
          `Cannot listen on --metrics-addr=127\\.0\\.0\\.1:${busyPort}: the address is in use`,
        ),
      );
    } finally {
      busy.close();
    }
  },
});

Deno.test({
  name: "a proxy shutdown shows on the client at info, not as a failed poll stream",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using processes = processList();
    const proxy = spawn(DENO, [...taskArgs("proxy"), "--web.listen-address=127.0.0.1:0"], {
      env: denoEnv(),
    });
    processes.push(proxy);
    const port = Number(
      (await proxy.waitFor(/msg="Listening on" address=127\.0\.0\.1:(\d+)/, 60_000))[1],
    );
    const client = spawn(DENO, [
      ...taskArgs("client"),
      `--proxy-url=http://127.0.0.1:${port}/`,
      "--fqdn=localhost",
      "--metrics-addr=",
    ], { env: denoEnv() });
    processes.push(client);
    await client.waitFor(/Registered with the proxy/, 60_000);
    await proxy.stop();
    const line = await client.waitFor(
      /level=(\w+) msg="(The proxy closed the connection[^"]*|The proxy is going away[^"]*)"/,
    );
    assert.equal(line[1], "info", line[0]);
    assert.doesNotMatch(client.output(), /level=warn msg="Poll stream failed".*aborted/);
  },
});

Deno.test("a failed first name resolution does not claim to keep a last answer", async () => {
  const { startAgent } = await import("../../client/agent/agent.ts");
  const { createLogger } = await import("../../lib/logger.ts");
  const lines: string[] = [];
  let lookups = 0;
  await using _agent = stopping(
    await startAgent({
      proxyUrl: "http://proxies.test:9/",
      fqdn: "localhost",
      logger: createLogger({ write: (line) => lines.push(line) }),
      metricsAddress: null,
      defaultMetrics: false,
      retryInitialMs: 50,
      retryMaxMs: 200,
      resolveIntervalMs: 50,
      resolve: () => {
        lookups++;
        return lookups === 2
          ? Promise.resolve(["127.0.0.1"])
          : Promise.reject(new Error("no such host"));
      },
      env: {},
    }),
  );
  await waitUntil(() => lookups >= 3 || undefined, 10_000, "three lookups");
  const resolving = lines.filter((l) => l.includes("Cannot resolve the proxy's host name"));
  assert.match(resolving[0]!, /connecting by name until it resolves/);
  assert.doesNotMatch(resolving[0]!, /keeping the last answer/);
  assert.match(resolving[1]!, /keeping the last answer/);
});
