/**
 * File descriptors (issue #10 item 3), with the proxy under `ulimit -n 256`:
 * idle keep-alive and silent connections from several source addresses
 * (127.0.0.2-5) until the proxy refuses them; /-/healthy from another
 * source works during the flood; after it, everything is back. And with the
 * caps off, the proxy runs into EMFILE and still accepts again once the
 * connections are gone (it stopped accepting for good before).
 */

import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { get, openSocket, startAdversary } from "./harness.ts";

/**
 * Opens a connection from `source` that sends `request` (if any) and reads
 * its answer; resolves to the socket while the proxy keeps it open, or null
 * when the proxy refused or closed it within `settleMs`.
 */
async function hold(
  port: number,
  source: string,
  request: string | null,
  settleMs = 300,
): Promise<Socket | null> {
  const socket = await openSocket(port, source);
  if (socket === null) return null;
  socket.on("error", () => {});
  let closed = false;
  let answer = "";
  socket.on("close", () => {
    closed = true;
    CLOSED.add(socket);
  });
  socket.on("data", (chunk) => answer += String(chunk));
  if (request !== null) socket.write(request);
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  if (closed || answer.startsWith("HTTP/1.1 503")) {
    socket.destroy();
    return null;
  }
  return socket;
}

/** Sockets the proxy closed (refused, or evicted later). */
const CLOSED = new WeakSet<Socket>();
const isOpen = (socket: Socket) => !CLOSED.has(socket) && !socket.destroyed;

const IDLE = "GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

async function healthyNow(port: number): Promise<number> {
  return (await get(port, "/-/healthy", 5_000)).status;
}

Deno.test({
  name:
    "adversarial: under ulimit -n 256 connection floods are refused at the caps and /-/healthy still answers",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const stack = await startAdversary({
      fdLimit: 256,
      args: ["--web.accept-check-interval=1s", "--web.read-header-timeout=30s"],
    });
    const held: Socket[] = [];
    try {
      assert.match(
        stack.proxy.output(),
        /max_connections=192 max_connections_per_source=96 fd_limit=256/,
      );
      // Idle keep-alive connections from one source: capped per source.
      const idle = await Promise.all(
        Array.from({ length: 150 }, () => hold(stack.port, "127.0.0.2", IDLE)),
      );
      const idleHeld = idle.filter((s) => s !== null) as Socket[];
      held.push(...idleHeld);
      const duringIdle = await healthyNow(stack.port);
      // Silent connections from three more sources: the total cap; the idle
      // ones are closed first to make room.
      // (In bursts of 30: an accept burst larger than the fd reserve (64)
      // can still run into EMFILE, which the next test covers.)
      const silent: (Socket | null)[] = [];
      for (const source of ["127.0.0.3", "127.0.0.4", "127.0.0.5"]) {
        for (let burst = 0; burst < 3; burst++) {
          silent.push(
            ...await Promise.all(Array.from({ length: 30 }, () => hold(stack.port, source, null))),
          );
        }
      }
      held.push(...silent.filter((s) => s !== null) as Socket[]);
      // Refusals and evictions arrive within a moment.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const silentHeld = silent.filter((s) => s !== null && isOpen(s)) as Socket[];
      const idleLeft = idleHeld.filter(isOpen).length;
      const peak = stack.usage();
      console.log(
        `fd flood (ulimit -n 256, cap 192, 96 per source): idle keep-alive held ${idleHeld.length}/150 ` +
          `(/-/healthy during: ${duringIdle}), silent held ${silentHeld.length}/270, idle left ${idleLeft}, ` +
          `proxy fds at peak ${peak.fds}, sockets ${peak.sockets}`,
      );
      assert.equal(
        idleHeld.length,
        96 - 0,
        "idle connections from one source stop at the per-source cap",
      );
      assert.equal(duringIdle, 200, "/-/healthy answers while one source holds its share");
      assert.ok(silentHeld.length + idleLeft <= 192, "no more than the total cap held");
      assert.ok(idleLeft < idleHeld.length, "idle keep-alive connections were closed first");
      assert.ok(
        silentHeld.length >= 150,
        `silent connections took the room (${silentHeld.length})`,
      );
      assert.ok(peak.fds < 256, `the proxy stayed below its fd limit (${peak.fds})`);
      for (const socket of held) socket.destroy();
      held.length = 0;
      await stack.checkAfter("fd flood");
      assert.ok(
        await stack.metric("pushprox_proxy_limit_hits_total", 'limit="connections_per_source"') > 0,
      );
      assert.ok(await stack.metric("pushprox_proxy_limit_hits_total", 'limit="connections"') > 0);
    } finally {
      for (const socket of held) socket.destroy();
      await stack.stop();
    }
  },
});

Deno.test({
  name:
    "adversarial: after running out of file descriptors the proxy accepts again once connections close",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Caps off, so that accept hits EMFILE (issue #10 item 3: it stopped
    // accepting for good, /-/healthy timed out, the listen queue filled).
    const stack = await startAdversary({
      fdLimit: 256,
      args: [
        "--web.max-connections=0",
        "--web.max-connections-per-source=0",
        "--web.accept-check-interval=1s",
      ],
    });
    const held: Socket[] = [];
    try {
      for (const source of ["127.0.0.2", "127.0.0.3", "127.0.0.4"]) {
        const opened = await Promise.all(
          Array.from({ length: 100 }, () => hold(stack.port, source, null, 50)),
        );
        held.push(...opened.filter((s) => s !== null) as Socket[]);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      const peak = stack.usage();
      console.log(`EMFILE: ${held.length} connections open, proxy fds ${peak.fds} (limit 256)`);
      assert.ok(peak.fds >= 250, `the proxy ran out of descriptors (${peak.fds})`);
      for (const socket of held) socket.destroy();
      held.length = 0;
      const closedAt = performance.now();
      // Accepting again: within the watchdog's interval and probe timeout.
      let status = 0;
      while (status !== 200 && performance.now() - closedAt < 20_000) {
        status = await healthyNow(stack.port);
      }
      console.log(
        `EMFILE: /-/healthy ${status} ${
          Math.round(performance.now() - closedAt)
        }ms after the flood ended`,
      );
      assert.equal(status, 200);
      await stack.checkAfter("EMFILE recovery");
    } finally {
      for (const socket of held) socket.destroy();
      await stack.stop();
    }
  },
});
