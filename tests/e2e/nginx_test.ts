/**
 * A real nginx (Debian's) between client and proxy, as a load balancer with
 * a 30 s idle timeout: heartbeats keep the Poll stream alive for 3 minutes
 * without a failed scrape, and when nginx answers its own HTML 502 (proxy
 * down) the client logs a clear connection error and recovers once the proxy
 * is back. nginx runs as this test's own process on loopback ports, with a
 * generated configuration and a temporary prefix.
 */

import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  freePort,
  hasExecutable,
  proxiedGet,
  spawn,
  startClientProcess,
  startProxyProcess,
  type TestProcess,
  waitUntil,
} from "../support.ts";

const NGINX = "/usr/sbin/nginx";
const missing = !hasExecutable(NGINX);
if (missing) console.warn(`SKIPPED nginx tests: ${NGINX} not installed (apt-get install nginx)`);

/** The configuration the README recommends, on loopback ports. */
function nginxConfig(dir: string, listenPort: number, proxyPort: number): string {
  return `
${Deno.uid() === 0 ? "user root;" : ""}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr notice;
events { worker_connections 128; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream pushprox {
    server 127.0.0.1:${proxyPort};
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass http://pushprox;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 30s;
      proxy_send_timeout 30s;
    }
  }
}
`;
}

async function startNginx(proxyPort: number): Promise<
  { process: TestProcess; port: number; dir: string }
> {
  const dir = await Deno.makeTempDir({ prefix: "pushprox-nginx-" });
  const port = await freePort();
  await Deno.writeTextFile(`${dir}/nginx.conf`, nginxConfig(dir, port, proxyPort));
  const process = spawn(NGINX, [
    "-e",
    "stderr",
    "-p",
    dir,
    "-c",
    `${dir}/nginx.conf`,
    "-g",
    "daemon off;",
  ]);
  await waitUntil(
    async () => {
      const response = await fetch(`http://127.0.0.1:${port}/-/healthy`).catch(() => null);
      await response?.body?.cancel();
      return response !== null || undefined;
    },
    10_000,
    `nginx on port ${port}:\n${process.output()}`,
  );
  return { process, port, dir };
}

async function startTarget(): Promise<{ server: Server; port: number }> {
  const server = createServer((_req, res) => res.end("up 1\n"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

function registrations(metrics: string): number {
  return Number(/^pushprox_proxy_registrations_total (\d+)/m.exec(metrics)?.[1] ?? NaN);
}

Deno.test({
  name: "nginx answering 502 (proxy down): the client logs a clear error and recovers",
  ignore: missing,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const target = await startTarget();
    let dir = "";
    try {
      let proxy = await startProxyProcess();
      processes.push(proxy.process);
      const nginx = await startNginx(proxy.port);
      dir = nginx.dir;
      processes.push(nginx.process);
      const client = startClientProcess([
        `--proxy-url=http://127.0.0.1:${nginx.port}/`,
        "--fqdn=127.0.0.1",
        "--proxy.retry.max-wait=1s",
      ]);
      processes.push(client);
      await client.waitFor(/Registered with the proxy/);

      await proxy.process.stop();
      await client.waitFor(
        /msg="Poll stream failed" .*err="proxy answered HTTP 502 text\/html instead of a Connect stream — a load balancer or proxy in between\?"/,
        15_000,
      );
      // Never data: no scrape was attempted from the error page.
      assert.doesNotMatch(client.output(), /Scraping|Scrape failed/);

      proxy = await startProxyProcess([`--web.listen-address=127.0.0.1:${proxy.port}`]);
      processes.push(proxy.process);
      const registered = client.output().match(/Registered with the proxy/g)!.length;
      await waitUntil(
        () => client.output().match(/Registered with the proxy/g)!.length > registered || undefined,
        15_000,
        "the client to register again",
      );
      const response = await proxiedGet(proxy.port, `http://127.0.0.1:${target.port}/metrics`);
      assert.equal(response.status, 200);
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      target.server.closeAllConnections();
      await new Promise((resolve) => target.server.close(resolve));
      if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "behind nginx with a 30 s idle timeout the stream survives 3 minutes without a failed scrape",
  ignore: missing,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const target = await startTarget();
    let dir = "";
    try {
      const proxy = await startProxyProcess(["--poll.heartbeat-interval=15s"]);
      processes.push(proxy.process);
      const nginx = await startNginx(proxy.port);
      dir = nginx.dir;
      processes.push(nginx.process);
      const client = startClientProcess([
        `--proxy-url=http://127.0.0.1:${nginx.port}/`,
        "--fqdn=127.0.0.1",
      ]);
      processes.push(client);
      await client.waitFor(/Registered with the proxy/);

      // Scrapes every few seconds, with two quiet spells longer than nginx's
      // idle timeout in between: only heartbeats keep the stream alive then.
      const quiet = [[25_000, 65_000], [90_000, 130_000]];
      const started = Date.now();
      let scrapes = 0;
      const failures: string[] = [];
      while (Date.now() - started < 180_000) {
        const at = Date.now() - started;
        if (quiet.some(([from, to]) => at >= from! && at < to!)) {
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          continue;
        }
        const response = await proxiedGet(proxy.port, `http://127.0.0.1:${target.port}/metrics`, {
          "x-prometheus-scrape-timeout-seconds": "5",
        });
        scrapes++;
        if (response.status !== 200) {
          failures.push(
            `${at}ms: ${response.status} ${new TextDecoder().decode(response.body)}`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 3_000));
      }
      assert.deepEqual(failures, []);
      assert.ok(scrapes >= 25, `${scrapes} scrapes`);
      // One stream all along: no reconnect, no poll error.
      const metrics = await (await fetch(`${proxy.url}/metrics`)).text();
      assert.equal(registrations(metrics), 1, "registrations");
      assert.doesNotMatch(client.output(), /Poll stream failed|ended the stream/);
      // The pushes went through nginx too (client streaming, unbuffered).
      assert.match(metrics, /^pushproxy_proxied_requests_total\{code="200"\} (\d+)/m);
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      target.server.closeAllConnections();
      await new Promise((resolve) => target.server.close(resolve));
      if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
