/**
 * The ClientService implementation without sockets: connect-es handler
 * contexts (`createHandlerContext`) against a real coordinator on a fake
 * clock. The authorization callbacks read the authentication result from a
 * context value, as proxy/http/server.ts wires them (it sets AUTH_RESULT,
 * PEER_ADDRESS and the source for every Connect call).
 */

import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  createHandlerContext,
  type HandlerContext,
} from "@connectrpc/connect";
import {
  ClientService,
  PollRequestSchema,
  type PollResponse,
  PollResponseSchema,
  type PushRequest,
  PushRequestSchema,
  type PushResponseSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import { createNullLogger } from "../../lib/logger.ts";
import { type AuthResult, type Principal, registrationProblem } from "../auth/auth.ts";
import { type ClientServiceOptions, createClientService, PEER_ADDRESS } from "./client_service.ts";
import {
  type Coordinator,
  type CoordinatorOptions,
  createCoordinator,
  type ScrapeReply,
} from "../core/coordinator.ts";
import { createProxyMetrics, type ProxyMetrics } from "../core/metrics.ts";

/** The authentication result of a call, as the proxy's router sets it. */
const AUTH = createContextKey<AuthResult | null>(null, { description: "test auth result" });

function principal(name: string, fqdnPatterns: string[] | null = null): Principal {
  return { credential: `token:${name}`, name, fqdnPatterns, fqdnNames: null };
}

type PollMessage = PollResponse["message"];
type PushMessage = NonNullable<MessageInitShape<typeof PushRequestSchema>["message"]>;

/** An open Poll stream; disposing it ends the call, as a client going away would. */
interface PollStream extends AsyncDisposable {
  context: HandlerContext & { abort(reason?: unknown): void };
  /** The next message, or null when the stream ended. */
  next(): Promise<PollMessage | null>;
}

interface Setup {
  coordinator: Coordinator;
  metrics: ProxyMetrics;
  clock: { now: number };
  poll(fqdn: string, auth?: AuthResult): Promise<PollStream>;
  push(
    messages: PushMessage[],
    auth?: AuthResult,
  ): Promise<MessageInitShape<typeof PushResponseSchema>>;
  scrape(host: string, timeoutMs?: number): Promise<ScrapeReply>;
  /** The value of a counter series, 0 when absent. */
  counter(name: string, labels?: string): Promise<number>;
}

const anyone: AuthResult = { ok: true, principal: principal("anyone") };

function setup(
  options: { coordinator?: Partial<CoordinatorOptions>; service?: Partial<ClientServiceOptions> } =
    {},
): Setup {
  const clock = { now: 1_000_000 };
  let ids = 0;
  const coordinator = createCoordinator({
    registrationTimeoutMs: 60_000,
    now: () => clock.now,
    newId: () => `id-${++ids}`,
    ...options.coordinator,
  });
  const metrics = createProxyMetrics({
    clientCount: () => coordinator.clientCount,
    scrapesInFlight: () => coordinator.scrapesInFlight,
    defaultMetrics: false,
  });
  const principalOf = (context: Pick<HandlerContext, "values">) => {
    const result = context.values.get(AUTH);
    return result?.ok ? result.principal : null;
  };
  const service = createClientService({
    coordinator,
    logger: createNullLogger(),
    metrics,
    heartbeatIntervalMs: 60_000,
    now: () => clock.now,
    authorizeRegistration(context, fqdn) {
      const caller = principalOf(context);
      if (caller === null) {
        throw new ConnectError("Cannot register: not authenticated", Code.Unauthenticated);
      }
      const problem = registrationProblem(caller, fqdn);
      if (problem !== null) {
        throw new ConnectError(`Cannot register: ${problem}`, Code.PermissionDenied);
      }
      return { credential: caller.credential, name: caller.name };
    },
    pushCredential: (context) => principalOf(context)?.credential ?? null,
    sourceOf: () => "10.0.0.5",
    ...options.service,
  });

  function context(method: "poll" | "push", auth: AuthResult) {
    return createHandlerContext({
      service: ClientService,
      method: ClientService.method[method],
      protocolName: "connect",
      requestMethod: "POST",
      url: `http://127.0.0.1/pushprox.v1.ClientService/${method === "poll" ? "Poll" : "Push"}`,
      contextValues: createContextValues()
        .set(AUTH, auth)
        .set(PEER_ADDRESS, "10.0.0.5:51234"),
    });
  }

  return {
    coordinator,
    metrics,
    clock,
    poll(fqdn, auth = anyone) {
      const ctx = context("poll", auth);
      const stream = service.poll(create(PollRequestSchema, { fqdn, version: "1.2.3" }), ctx);
      const iterator = stream[Symbol.asyncIterator]();
      return Promise.resolve({
        context: ctx,
        async next() {
          const result = await iterator.next();
          return result.done ? null : create(PollResponseSchema, result.value).message;
        },
        async [Symbol.asyncDispose]() {
          ctx.abort();
          await iterator.return?.();
        },
      });
    },
    push(messages, auth = anyone) {
      async function* requests(): AsyncGenerator<PushRequest> {
        for (const message of messages) yield create(PushRequestSchema, { message });
      }
      return service.push(requests(), context("push", auth));
    },
    scrape(host, timeoutMs = 5_000) {
      const reply = coordinator.requestScrape(
        {
          host,
          method: "GET",
          url: `http://${host}:9100/metrics`,
          headers: [],
          deadline: clock.now + timeoutMs,
        },
        new AbortController().signal,
      );
      reply.catch(() => {}); // a failed test must not end in an unhandled rejection
      return reply;
    },
    async counter(name, labels = "") {
      const text = await metrics.registry.getSingleMetricAsString(name);
      const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
      return line === undefined ? 0 : Number(line.split(" ").at(-1));
    },
  };
}

/** The Connect error a call failed with. */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof ConnectError, `expected a ConnectError, got ${error}`);
    return error;
  }
  assert.fail("expected the call to fail");
}

/** Opens a stream and reads its `registered` message. */
async function registered(s: Setup, fqdn: string, auth?: AuthResult) {
  const stream = await s.poll(fqdn, auth);
  const first = await stream.next();
  assert.equal(first?.case, "registered");
  return { stream, sessionId: first.value.sessionId };
}

function text(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

async function readBody(reply: ScrapeReply): Promise<string> {
  let body = "";
  for await (const chunk of reply.body) body += new TextDecoder().decode(chunk);
  return body;
}

Deno.test("Poll registers the client and says its session and heartbeat interval", async () => {
  const s = setup();
  await using stream = await s.poll("node-a.example");
  const first = await stream.next();
  assert.equal(first?.case, "registered");
  assert.equal(first.value.heartbeatIntervalMs, 60_000);
  const [client] = s.coordinator.listClients();
  assert.equal(client?.fqdn, "node-a.example");
  assert.equal(client?.protocol, "connect");
  assert.equal(client?.version, "1.2.3");
  assert.equal(client?.peerAddress, "10.0.0.5:51234");
  assert.equal(client?.connected, true);
  assert.equal(first.value.sessionId, "id-1");
  assert.equal(await s.counter("pushprox_proxy_registrations_total"), 1);
});

Deno.test("an idle Poll stream gets heartbeats", async () => {
  const s = setup({ service: { heartbeatIntervalMs: 5 } });
  await using stream = await s.poll("node-a");
  assert.equal((await stream.next())?.case, "registered");
  assert.equal((await stream.next())?.case, "heartbeat");
  assert.equal((await stream.next())?.case, "heartbeat");
});

Deno.test("a scrape for the client is delivered on its Poll stream", async () => {
  const s = setup();
  await using stream = await s.poll("node-a");
  await stream.next();
  const reply = s.scrape("node-a", 7_000);
  const message = await stream.next();
  assert.equal(message?.case, "scrape");
  assert.equal(message.value.url, "http://node-a:9100/metrics");
  assert.equal(message.value.method, "GET");
  assert.equal(message.value.timeoutMs, 7_000);
  assert.equal(s.coordinator.scrapesInFlight, 1);
  await stream[Symbol.asyncDispose]();
  await assert.rejects(reply, /disconnected before answering/);
});

Deno.test("a Push matching the scrape relays its head and body", async () => {
  const s = setup();
  const { stream, sessionId } = await registered(s, "node-a");
  await using _stream = stream;
  const reply = s.scrape("node-a");
  const scrape = await stream.next();
  assert.equal(scrape?.case, "scrape");
  const pushed = s.push([
    {
      case: "head",
      value: {
        scrapeId: scrape.value.id,
        sessionId,
        status: 200,
        headers: [{ name: "content-type", value: "text/plain" }],
        error: "",
      },
    },
    { case: "bodyChunk", value: text("up 1\n") },
    { case: "bodyChunk", value: text("load 2\n") },
  ]);
  const answer = await reply;
  assert.equal(answer.status, 200);
  assert.deepEqual(answer.headers.map((h) => [h.name, h.value]), [["content-type", "text/plain"]]);
  assert.equal(await readBody(answer), "up 1\nload 2\n");
  answer.settle();
  assert.equal((await pushed).bytesRelayed, 12n);
  assert.equal(s.coordinator.scrapesInFlight, 0);
});

Deno.test("Push refusals: no head, an unknown scrape, another stream's credential", async () => {
  const s = setup();
  const noHead = await failure(s.push([{ case: "bodyChunk", value: text("x") }]));
  assert.equal(noHead.code, Code.InvalidArgument);
  assert.equal(await s.counter("pushprox_proxy_push_errors_total", '{reason="invalid"}'), 1);

  const head = { scrapeId: "nope", sessionId: "nope", status: 200, headers: [], error: "" };
  const unknown = await failure(s.push([{ case: "head", value: head }]));
  assert.equal(unknown.code, Code.NotFound);
  assert.equal(
    await s.counter("pushprox_proxy_push_errors_total", '{reason="unknown_scrape"}'),
    1,
  );

  const { stream, sessionId } = await registered(s, "node-a");
  await using _stream = stream;
  const reply = s.scrape("node-a");
  const scrape = await stream.next();
  assert.equal(scrape?.case, "scrape");
  const other: AuthResult = { ok: true, principal: principal("mallory") };
  const foreign = await failure(
    s.push([{ case: "head", value: { ...head, scrapeId: scrape.value.id, sessionId } }], other),
  );
  assert.equal(foreign.code, Code.PermissionDenied);
  assert.equal(
    await s.counter("pushprox_proxy_push_errors_total", '{reason="foreign_scrape"}'),
    1,
  );
  assert.equal(s.coordinator.scrapesInFlight, 1, "the scrape still waits for its own client");
  await stream[Symbol.asyncDispose]();
  await assert.rejects(reply);
});

Deno.test("Poll refusals from the authentication result in the context", async () => {
  const s = setup();
  const unauthenticated = await failure(
    s.poll("node-a", { ok: false, kind: "missing", reason: "no credentials" }).then((p) =>
      p.next()
    ),
  );
  assert.equal(unauthenticated.code, Code.Unauthenticated);

  const narrow: AuthResult = { ok: true, principal: principal("alice", ["*.eu.example"]) };
  const forbidden = await failure(s.poll("node-a.us.example", narrow).then((p) => p.next()));
  assert.equal(forbidden.code, Code.PermissionDenied);
  assert.match(forbidden.rawMessage, /may not register "node-a.us.example"/);
  assert.equal(s.coordinator.clientCount, 0);
});

Deno.test("a connected fqdn is not taken over with another credential", async () => {
  const s = setup();
  const alice: AuthResult = { ok: true, principal: principal("alice") };
  const bob: AuthResult = { ok: true, principal: principal("bob") };
  await using _held = (await registered(s, "node-a", alice)).stream;
  const refused = await failure(s.poll("node-a", bob).then((p) => p.next()));
  assert.equal(refused.code, Code.PermissionDenied);
  assert.equal(
    await s.counter("pushprox_proxy_auth_failures_total", '{role="client",reason="forbidden"}'),
    1,
  );
});

Deno.test("registration limits answer ResourceExhausted and are counted", async () => {
  const s = setup({ coordinator: { maxClients: 1 } });
  await using _first = (await registered(s, "node-a")).stream;
  const refused = await failure(s.poll("node-b").then((p) => p.next()));
  assert.equal(refused.code, Code.ResourceExhausted);
  assert.equal(await s.counter("pushprox_proxy_limit_hits_total", '{limit="clients"}'), 1);
});

Deno.test("a newer stream for the same fqdn ends the older one with AlreadyExists", async () => {
  const s = setup();
  const { stream: older } = await registered(s, "node-a");
  await using _older = older;
  const waiting = older.next();
  await using _newer = (await registered(s, "node-a")).stream;
  const replaced = await failure(waiting);
  assert.equal(replaced.code, Code.AlreadyExists);
  assert.equal(s.coordinator.listClients()[0]?.connected, true, "the newer stream holds it");
});

Deno.test("a draining proxy tells the stream to go away, then ends it", async () => {
  const s = setup();
  await using stream = (await registered(s, "node-a")).stream;
  const waiting = stream.next();
  s.coordinator.drain();
  const goAway = await waiting;
  assert.equal(goAway?.case, "goAway");
  assert.equal(await stream.next(), null);
  const late = await failure(s.poll("node-b").then((p) => p.next()));
  assert.equal(late.code, Code.Unavailable);
});

Deno.test("a credential revoked while the stream is open ends it at the next heartbeat", async () => {
  let revoked: string | null = null;
  const s = setup({
    service: { heartbeatIntervalMs: 5, revalidate: () => Promise.resolve(revoked) },
  });
  await using stream = (await registered(s, "node-a")).stream;
  assert.equal((await stream.next())?.case, "heartbeat");
  revoked = "token expired";
  const ended = await failure(stream.next());
  assert.equal(ended.code, Code.PermissionDenied);
  assert.match(ended.rawMessage, /token expired/);
  assert.equal(s.coordinator.listClients()[0]?.connected, false);
});

Deno.test("a client going away closes its session", async () => {
  const s = setup();
  const { stream } = await registered(s, "node-a");
  const waiting = stream.next();
  stream.context.abort();
  assert.equal(await waiting, null);
  const [client] = s.coordinator.listClients();
  assert.equal(client?.connected, false);
  assert.equal(client?.disconnectedAt, s.clock.now);
});
