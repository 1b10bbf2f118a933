/**
 * Every kind of request the proxy's port serves, cut off at every stage
 * (mid-headers, after the headers, mid-body, after the answer) by a close
 * (FIN) or a reset (RST, SO_LINGER 0), against the running proxy process.
 * The proxy must survive each, and end up with no more sockets than before.
 */

import {
  concat,
  type Ending,
  endSocket,
  envelope,
  openSocket,
  pollRequest,
  PUSH_HEAD,
  startAdversary,
} from "./harness.ts";
import { stopping } from "../fixture.ts";

type Stage = "mid-headers" | "after-headers" | "mid-body" | "after-answer";

interface Kind {
  name: string;
  head: string;
  body: Uint8Array;
}

export function kinds(targetPort: number): Kind[] {
  const connect = (path: string, contentType: string, body: Uint8Array): Kind => ({
    name: path,
    head: `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\n` +
      `Connect-Protocol-Version: 1\r\nContent-Length: ${body.length}\r\n\r\n`,
    body,
  });
  const get = (name: string, target: string, host: string): Kind => ({
    name,
    head: `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 8\r\n\r\n`,
    body: new TextEncoder().encode("12345678"),
  });
  const legacyPush = new TextEncoder().encode(
    "HTTP/1.1 200 OK\r\nId: 1234\r\nX-Prometheus-Pushgateway-Scrape-Id: 1234\r\nContent-Length: 5\r\n\r\nup 1\n",
  );
  return [
    get(
      "scrape (absolute-form)",
      `http://localhost:${targetPort}/metrics`,
      `localhost:${targetPort}`,
    ),
    {
      ...connect(
        "/pushprox.v1.ClientService/Poll",
        "application/connect+proto",
        envelope(0, pollRequest("matrix")),
      ),
      name: "Connect Poll",
    },
    {
      ...connect(
        "/pushprox.v1.ClientService/Push",
        "application/connect+proto",
        concat(envelope(0, PUSH_HEAD), envelope(0, new TextEncoder().encode("up 1\n"))),
      ),
      name: "Connect Push",
    },
    {
      ...connect(
        "/pushprox.v1.RegistryService/ListClients",
        "application/json",
        new TextEncoder().encode("{}"),
      ),
      name: "Connect JSON ListClients",
    },
    {
      ...connect(
        "/pushprox.v1.RegistryService/ListClients",
        "application/grpc-web+proto",
        envelope(0, new Uint8Array()),
      ),
      name: "gRPC-Web ListClients",
    },
    {
      name: "legacy /poll",
      head: `POST /poll HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 13\r\n\r\n`,
      body: new TextEncoder().encode("matrix-legacy"),
    },
    {
      name: "legacy /push",
      head:
        `POST /push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${legacyPush.length}\r\n\r\n`,
      body: legacyPush,
    },
    get("/clients", "/clients", "127.0.0.1"),
    get("/metrics", "/metrics", "127.0.0.1"),
    {
      name: "CONNECT",
      head: `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n`,
      body: new TextEncoder().encode("\x16\x03\x01\x00\x05hello"),
    },
  ];
}

export const STAGES: Stage[] = ["mid-headers", "after-headers", "mid-body", "after-answer"];
export const ENDINGS: Ending[] = ["close", "reset"];

/** Plays one case; resolves when the connection was cut. */
export async function play(port: number, kind: Kind, stage: Stage, ending: Ending): Promise<void> {
  const socket = await openSocket(port);
  if (socket === null) throw new Error("Cannot connect to the proxy");
  socket.on("error", () => {});
  const head = new TextEncoder().encode(kind.head);
  const pause = () => new Promise((resolve) => setTimeout(resolve, 100));
  if (stage === "mid-headers") {
    socket.write(head.subarray(0, Math.floor(head.length / 2)));
  } else if (stage === "after-headers") {
    socket.write(head);
  } else if (stage === "mid-body") {
    socket.write(concat(head, kind.body.subarray(0, Math.ceil(kind.body.length / 2))));
  } else {
    socket.write(concat(head, kind.body));
    // The answer, or at least its first bytes (streams answer late), or 1.5 s.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1_500);
      socket.once("data", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  await pause();
  endSocket(socket, ending);
}

Deno.test({
  name:
    "adversarial: every request kind cut at every stage by close or reset leaves the proxy serving",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using stack = stopping(await startAdversary({ args: ["--registration.timeout=1s"] }));
    const all = kinds(stack.targetPort);
    const cases: [Kind, Stage, Ending][] = [];
    for (const kind of all) {
      for (const stage of STAGES) for (const ending of ENDINGS) cases.push([kind, stage, ending]);
    }
    const started = performance.now();
    // A few at a time, so that a failure points at few cases.
    for (let i = 0; i < cases.length; i += 16) {
      await Promise.all(cases.slice(i, i + 16).map(([k, s, e]) => play(stack.port, k, s, e)));
    }
    console.log(
      `reset matrix: ${all.length} kinds x ${STAGES.length} stages x ${ENDINGS.length} endings = ${cases.length} cases in ${
        Math.round(performance.now() - started)
      }ms`,
    );
    await stack.checkAfter("reset matrix");
  },
});

Deno.test({
  name:
    "adversarial: a CONNECT whose sender resets without reading the 501 leaves the proxy serving",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using stack = stopping(await startAdversary());
    const connectKind = kinds(stack.targetPort).find((k) => k.name === "CONNECT")!;
    // Issue #10 item 2: `curl -x` closing or resetting before reading the answer.
    for (let round = 0; round < 20; round++) {
      await Promise.all([
        play(stack.port, connectKind, "after-answer", "reset"),
        play(stack.port, connectKind, "after-headers", "reset"),
        play(stack.port, connectKind, "mid-body", "close"),
      ]);
    }
    await stack.checkAfter("CONNECT reset");
  },
});
