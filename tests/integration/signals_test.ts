/**
 * One Ctrl-C is one shutdown: SIGINT delivered twice within milliseconds (a
 * terminal signals the whole process group, and `deno task`/npx forward it
 * again) keeps draining, so that a slow scrape in flight completes, and the
 * program then exits by itself. Checked on real processes, by sending two
 * SIGINTs 50 ms apart to the program and by interrupting `deno task` the way
 * a terminal does (SIGINT to its process group).
 */

import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  DENO,
  denoEnv,
  hasExecutable,
  proxiedGet,
  spawn,
  startClientProcess,
  startProxyProcess,
  type TestProcess,
  waitUntil,
} from "../support.ts";

const SLOW_MS = 2_000;
const SETSID = "/usr/bin/setsid";

/** A target whose /slow answers after SLOW_MS. */
async function startTarget(): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.url === "/slow") {
      setTimeout(() => res.end("slow 1\n"), SLOW_MS);
    } else {
      res.end("up 1\n");
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

async function stopTarget(target: { server: Server }): Promise<void> {
  target.server.closeAllConnections();
  await new Promise((resolve) => target.server.close(resolve));
}

/** Starts a slow scrape through the proxy and resolves once the client has it. */
async function slowScrapeInFlight(
  proxyPort: number,
  targetPort: number,
): Promise<{ response: ReturnType<typeof proxiedGet> }> {
  const scrape = proxiedGet(proxyPort, `http://127.0.0.1:${targetPort}/slow`, {
    "x-prometheus-scrape-timeout-seconds": "20",
  });
  scrape.catch(() => {}); // awaited by the test; no unhandled rejection meanwhile
  await waitUntil(
    async () => {
      const metrics = await (await fetch(`http://127.0.0.1:${proxyPort}/metrics`)).text();
      return /^pushprox_proxy_scrapes_in_flight 1$/m.test(metrics) || undefined;
    },
    5_000,
    "the scrape to be in flight",
  );
  await new Promise((resolve) => setTimeout(resolve, 200)); // the client has it
  return { response: scrape };
}

/** SIGINT twice, 50 ms apart, to one process or (negative pid) a process group. */
async function doubleSigint(pid: number): Promise<void> {
  Deno.kill(pid, "SIGINT");
  await new Promise((resolve) => setTimeout(resolve, 50));
  try {
    Deno.kill(pid, "SIGINT");
  } catch { /* already gone: then the test fails on its own assertions */ }
}

async function assertCompleted(scrape: { response: ReturnType<typeof proxiedGet> }): Promise<void> {
  const response = await scrape.response;
  assert.equal(response.status, 200, new TextDecoder().decode(response.body));
  assert.equal(new TextDecoder().decode(response.body), "slow 1\n");
}

/** Waits for the exit, at most 15 s. */
async function exitOf(process: TestProcess): Promise<Deno.CommandStatus> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no exit:\n${process.output()}`)), 15_000);
  });
  try {
    return await Promise.race([process.status, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name:
    "proxy: SIGINT twice within 100 ms keeps draining; the slow scrape completes, then it exits",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const target = await startTarget();
    try {
      const proxy = await startProxyProcess(["--web.drain-timeout=20s"]);
      processes.push(proxy.process);
      const client = startClientProcess([`--proxy-url=${proxy.url}/`, "--fqdn=127.0.0.1"]);
      processes.push(client);
      await client.waitFor(/Registered with the proxy/);

      const scrape = await slowScrapeInFlight(proxy.port, target.port);
      await doubleSigint(proxy.process.pid);
      await assertCompleted(scrape);
      const status = await exitOf(proxy.process);
      assert.equal(status.code, 0, proxy.process.output());
      assert.match(proxy.process.output(), /msg=Drained/);
      assert.doesNotMatch(proxy.process.output(), /stopping now/);
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      await stopTarget(target);
    }
  },
});

Deno.test({
  name: "client: SIGINT twice within 100 ms keeps finishing the slow scrape, then it exits",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const target = await startTarget();
    try {
      const proxy = await startProxyProcess();
      processes.push(proxy.process);
      const client = startClientProcess([`--proxy-url=${proxy.url}/`, "--fqdn=127.0.0.1"]);
      processes.push(client);
      await client.waitFor(/Registered with the proxy/);

      const scrape = await slowScrapeInFlight(proxy.port, target.port);
      await doubleSigint(client.pid);
      await assertCompleted(scrape);
      const status = await exitOf(client);
      assert.equal(status.code, 0, client.output());
      assert.doesNotMatch(client.output(), /stopping now/);
    } finally {
      await Promise.all(processes.reverse().map((p) => p.stop()));
      await stopTarget(target);
    }
  },
});

Deno.test({
  name: "deno task proxy: Ctrl-C (SIGINT to the process group) drains; the slow scrape completes",
  ignore: !hasExecutable(SETSID),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const processes: TestProcess[] = [];
    const target = await startTarget();
    // setsid execs `deno task` as the leader of a new process group, like a
    // shell's foreground job; the group's id is its pid.
    const task = spawn(SETSID, [
      DENO,
      "task",
      "proxy",
      "--web.listen-address=127.0.0.1:0",
      "--web.drain-timeout=20s",
    ], { env: denoEnv() });
    try {
      const match = await task.waitFor(/msg="Listening on" address=127\.0\.0\.1:(\d+)/, 30_000);
      const port = Number(match[1]);
      const client = startClientProcess([
        `--proxy-url=http://127.0.0.1:${port}/`,
        "--fqdn=127.0.0.1",
      ]);
      processes.push(client);
      await client.waitFor(/Registered with the proxy/);

      const scrape = await slowScrapeInFlight(port, target.port);
      Deno.kill(-task.pid, "SIGINT"); // what the terminal does on Ctrl-C
      await assertCompleted(scrape);
      const status = await exitOf(task);
      assert.equal(status.code, 0, task.output());
      assert.match(task.output(), /msg=Drained/);
      assert.doesNotMatch(task.output(), /stopping now/);
    } finally {
      await Promise.all(processes.map((p) => p.stop()));
      try {
        Deno.kill(-task.pid, "SIGKILL"); // the whole group, whatever is left of it
      } catch { /* all gone */ }
      await task.status;
      await stopTarget(target);
    }
  },
});

Deno.test({
  name:
    "deno task proxy: SIGTERM to the deno task process reaches the program, which drains and exits",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using task = spawn(DENO, ["task", "proxy", "--web.listen-address=127.0.0.1:0"], {
      env: denoEnv(),
    });
    await task.waitFor(/msg="Listening on" address=127\.0\.0\.1:(\d+)/, 30_000);
    task.kill("SIGTERM"); // deno task's own pid only, as a service manager would
    const status = await exitOf(task);
    assert.equal(status.code, 0, task.output());
    assert.match(task.output(), /msg="Shutting down" signal=SIGTERM/);
    assert.match(task.output(), /msg=Drained/);
  },
});
