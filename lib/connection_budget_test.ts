import assert from "node:assert/strict";
import { connect, createServer, type Server, type Socket } from "node:net";
import {
  type ConnectionLimit,
  createConnectionBudget,
  defaultMaxConnections,
  keepAccepting,
  softFdLimit,
} from "./connection_budget.ts";
import { closing } from "../tests/fixture.ts";

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

Deno.test("softFdLimit() reads the soft open-files limit", () => {
  assert.equal(softFdLimit(LIMITS), 1024);
  assert.equal(softFdLimit(LIMITS.replace("1024 ", "unlimited ")), null);
  assert.equal(softFdLimit("nothing here"), null);
  const own = softFdLimit();
  assert.ok(own === null || own > 0);
});

Deno.test("defaultMaxConnections() keeps a reserve below the fd limit", () => {
  assert.equal(defaultMaxConnections(256), 192);
  assert.equal(defaultMaxConnections(1024), 921);
  assert.equal(defaultMaxConnections(20_000), 18_000);
  assert.equal(defaultMaxConnections(null), 10_000);
  assert.equal(defaultMaxConnections(40), 16);
});

/** A server whose connections go through a budget; requests are lines "busy"/"done". */
async function budgetServer(maxConnections: number, maxPerSource: number) {
  const refused: ConnectionLimit[] = [];
  const budget = createConnectionBudget({
    maxConnections,
    maxPerSource,
    onRefused: (limit) => refused.push(limit),
  });
  const server: Server = createServer((socket: Socket) => {
    if (!budget.admit(socket, (s) => s.destroy())) return;
    socket.on("data", (chunk) => {
      for (const line of String(chunk).split("\n")) {
        if (line === "busy") budget.busy(socket);
        if (line === "done") budget.done(socket);
      }
      socket.write("ok\n");
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const clients: Socket[] = [];
  /** Connects; resolves to "open" when answered, "closed" when the server closed it. */
  function dial(send: string): Promise<{ socket: Socket; state: "open" | "closed" }> {
    return new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1");
      clients.push(socket);
      socket.on("error", () => {});
      socket.once("data", () => resolve({ socket, state: "open" }));
      socket.once("close", () => resolve({ socket, state: "closed" }));
      socket.write(send);
    });
  }
  return {
    budget,
    refused,
    dial,
    async close() {
      for (const socket of clients) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

Deno.test("connection budget refuses above the cap and admits again when one closes", async () => {
  await using s = closing(await budgetServer(3, 0));
  const open = [];
  for (let i = 0; i < 3; i++) open.push(await s.dial("busy\n"));
  assert.deepEqual(open.map((c) => c.state), ["open", "open", "open"]);
  assert.equal((await s.dial("busy\n")).state, "closed");
  assert.deepEqual(s.refused, ["connections"]);
  open[0]!.socket.destroy();
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(s.budget.open, 2);
  assert.equal((await s.dial("busy\n")).state, "open");
});

Deno.test("connection budget closes the oldest idle connection to make room", async () => {
  await using s = closing(await budgetServer(2, 0));
  const first = await s.dial("busy\ndone\n");
  const second = await s.dial("busy\ndone\n");
  const closed = new Promise((resolve) => first.socket.once("close", resolve));
  assert.equal((await s.dial("busy\n")).state, "open");
  await closed;
  assert.equal(second.socket.destroyed, false);
  assert.deepEqual(s.refused, []);
  // Now one idle (second) and one busy: the next evicts second, then none is idle.
  assert.equal((await s.dial("busy\n")).state, "open");
  assert.equal((await s.dial("busy\n")).state, "closed");
  assert.deepEqual(s.refused, ["connections"]);
});

Deno.test("connection budget caps connections per source address", async () => {
  await using s = closing(await budgetServer(0, 2));
  assert.equal((await s.dial("busy\n")).state, "open");
  assert.equal((await s.dial("busy\n")).state, "open");
  assert.equal((await s.dial("busy\n")).state, "closed");
  assert.deepEqual(s.refused, ["connections_per_source"]);
  assert.equal(s.budget.openFrom("127.0.0.1"), 2);
});

Deno.test("keepAccepting() leaves a listener that accepts alone and closes its probes", async () => {
  const stop = new AbortController();
  const seen: Socket[] = [];
  const server = createServer();
  let restarts = 0;
  const watchdog = keepAccepting(server, {
    signal: stop.signal,
    intervalMs: 50,
    acceptTimeoutMs: 1_000,
    onRestart: () => restarts++,
  });
  server.on("connection", (socket: Socket) => {
    socket.on("error", () => {});
    if (!watchdog.isProbe(socket)) seen.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(restarts, 0);
    // A probe accepted before its own connect event is known only then, and closed.
    assert.equal(seen.filter((socket) => !socket.destroyed).length, 0, "probes are closed");
  } finally {
    stop.abort();
    for (const socket of seen) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await new Promise((resolve) => server.close(resolve));
  }
});
