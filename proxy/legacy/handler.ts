/**
 * The adapter for unmodified upstream `pushprox-client` binaries (v0.1.x,
 * v0.2.x and the Rancher fork): `POST /poll` and `POST /push` in upstream's
 * wire format, joined to the same coordinator as Connect clients.
 *
 * The sessions, held polls and their timers are the state machine in
 * legacy_polls.ts; this file reads and answers the requests. A poll with
 * nothing to do is held, as upstream holds it,
 * until a scrape comes, the client disconnects, or a newer poll for the same
 * fqdn displaces it (408, as upstream). It is never ended for lack of a
 * scrape: whatever the proxy answered then, the Go client would parse it as
 * a request and log an error (`Error reading request: malformed HTTP
 * version …`) and count a poll error, every time, on every idle client. A
 * dead poll connection is found by TCP keep-alive (turned on for held
 * polls), by the close event and by a check of the socket every
 * `pollHoldMs`.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { peerAddress } from "../../lib/address.ts";
import { forwardableHeaders, type HeaderField } from "../../lib/headers.ts";
import type { Logger } from "../../lib/logger.ts";
import { LEGACY_PUSH_TIMEOUT_HEADER, SCRAPE_TIMEOUT_HEADER } from "../../lib/scrape_timeout.ts";
import { type Coordinator, CoordinatorError } from "../core/coordinator.ts";
import { fqdnProblem } from "../core/identity.ts";
import { sourceKey } from "../core/rate_limit.ts";
import { formatLegacyScrape } from "./request.ts";
import { type LegacyResponse, readLegacyResponse } from "./response.ts";
import type { ProxyMetrics } from "../core/metrics.ts";
import { pushErrorReason } from "../core/errors.ts";
import { createLegacyPolls, type PollOutcome } from "./polls.ts";
import { errorMessage } from "../../lib/error_message.ts";

/**
 * Decides whether a legacy client may poll for, or push an answer for,
 * `fqdn`. For a push, `fqdn` is the client the scrape was sent to. The seam
 * for client authentication: upstream clients can present a client
 * certificate (`req.socket`) or basic-auth credentials from the userinfo of
 * their `--proxy-url` (`Authorization` header).
 */
export type LegacyAuthorizer = (
  req: IncomingMessage,
  fqdn: string,
) => LegacyDecision | Promise<LegacyDecision>;

/**
 * What a {@linkcode LegacyAuthorizer} decides: allowed (true or a grant),
 * refused (false: 403), or refused with another status, e.g. 429 with
 * `retryAfterMs` for a source past its budget of failed password checks.
 */
export type LegacyDecision =
  | boolean
  | LegacyGrant
  | { status: number; message: string; retryAfterMs?: number };

/**
 * An authorizer's yes, naming the credential used: an fqdn's session accepts
 * polls and pushes only with the credential it was opened with.
 */
export interface LegacyGrant {
  credential: string;
}

/** Options for {@linkcode createLegacyHandler}. */
export interface LegacyHandlerOptions {
  coordinator: Coordinator;
  logger: Logger;
  metrics: ProxyMetrics;
  /**
   * How often a held poll's connection is checked (a poll is never answered
   * for lack of a scrape); tests shorten it. @default {60000}
   */
  pollHoldMs?: number;
  /** TCP keep-alive probes on held polls start after this much silence. @default {60000} */
  keepAliveMs?: number;
  /** How long a session outlives its last poll before it is closed. @default {10000} */
  sessionGraceMs?: number;
  /** Largest status line and header block of a push. @default {1048576} */
  maxPushHeaderBytes?: number;
  /** Refuses polls and pushes with 403 when it returns false. @default {allows all} */
  authorize?: LegacyAuthorizer;
  /** Told when a push matched a scrape: the scrape's deadline bounds its body from then on. */
  bodyBound?: (req: IncomingMessage) => void;
  /** The coordinator's clock. @default {Date.now} */
  now?: () => number;
}

/** The `/poll` and `/push` endpoints. */
export interface LegacyHandler {
  /** Serves `POST /poll`: the body is the fqdn, the answer a scrape. */
  poll(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Serves `POST /push`: the body is the scrape's serialized response. */
  push(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /**
   * Stops taking polls (held ones are answered 503), closes all legacy
   * sessions and stops their timers. Pushes for scrapes already sent are
   * still taken, so that a draining proxy can finish them. Idempotent.
   */
  close(): void;
  /** Legacy sessions currently open. */
  readonly sessionCount: number;
}

/** Upstream's answer to a displaced poll, kept verbatim. */
const DISPLACED_TEXT = "Error WaitForScrapeInstruction: request is expired\n";
/** Header fields of a push that never reach Prometheus. */
const PUSH_ONLY: ReadonlySet<string> = new Set([
  "id",
  LEGACY_PUSH_TIMEOUT_HEADER,
  SCRAPE_TIMEOUT_HEADER,
]);
const MAX_POLL_BODY = 1024;
const MAX_ERROR_TEXT = 64 * 1024;
const SHUTTING_DOWN_TEXT = "The proxy is shutting down\n";

/**
 * Creates the legacy protocol handler: the HTTP adapter around the poll
 * state machine in legacy_polls.ts.
 *
 * @param options Coordinator, logger, metrics, timing and the auth seam.
 * @returns The handler; call `close` when the server stops.
 */
export function createLegacyHandler(options: LegacyHandlerOptions): LegacyHandler {
  const { coordinator, logger, metrics } = options;
  const pollHoldMs = options.pollHoldMs ?? 60_000;
  const keepAliveMs = options.keepAliveMs ?? 60_000;
  const polls = createLegacyPolls({
    coordinator,
    logger,
    metrics,
    ...(options.sessionGraceMs === undefined ? {} : { sessionGraceMs: options.sessionGraceMs }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });

  for (const [path, codes] of [["/poll", ["200", "408"]], ["/push", ["200", "500"]]] as const) {
    for (const code of codes) metrics.httpRequests.inc({ code, path }, 0);
  }

  function observe(path: string, code: number, started: number): void {
    metrics.httpRequests.inc({ code: String(code), path });
    metrics.httpDuration.observe({ path }, (performance.now() - started) / 1000);
  }

  function answer(res: ServerResponse, code: number, body: string | Uint8Array): void {
    if (res.headersSent || res.destroyed) return;
    const bytes = typeof body === "string" ? latin1Bytes(body) : body;
    res.writeHead(code, {
      "content-type": "text/plain; charset=utf-8",
      "content-length": String(bytes.byteLength),
    });
    res.end(bytes);
  }

  async function poll(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const finish = (code: number, body: string | Uint8Array | null) => {
      if (body !== null) answer(res, code, body);
      observe("/poll", code, started);
    };
    if (polls.closed) return finish(503, SHUTTING_DOWN_TEXT);
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      return finish(405, `Method ${req.method} is not allowed on /poll\n`);
    }
    const text = await readText(req, MAX_POLL_BODY);
    if (text === null) {
      return finish(413, `Error polling: the fqdn is longer than ${MAX_POLL_BODY} bytes\n`);
    }
    const fqdn = text.trim();
    const problem = fqdnProblem(fqdn);
    if (problem !== null) return finish(400, `Error polling: ${problem}\n`);
    const grant = options.authorize ? await options.authorize(req, fqdn) : true;
    if (grant === false) {
      return finish(403, `Error polling: not allowed to poll for ${fqdn}\n`);
    }
    if (typeof grant === "object" && "status" in grant) {
      if (grant.retryAfterMs) {
        res.setHeader("retry-after", String(Math.max(1, Math.ceil(grant.retryAfterMs / 1000))));
      }
      return finish(grant.status, `Error polling: ${grant.message}\n`);
    }
    // While draining, old clients are told to come back (they retry).
    if (polls.closed || coordinator.draining) return finish(503, SHUTTING_DOWN_TEXT);
    if (res.destroyed) return finish(499, null);

    const legacy = polls.open(
      fqdn,
      typeof grant === "object" && "credential" in grant ? grant.credential : "",
      sourceKey(req.socket.remoteAddress),
      peerAddress(req.socket),
    );
    if (!("session" in legacy)) {
      logger.warn("Poll refused", { protocol: "legacy", fqdn, err: legacy.message });
      if (legacy.retryAfterMs > 0) {
        res.setHeader("retry-after", String(Math.ceil(legacy.retryAfterMs / 1000)));
      }
      return finish(legacy.status, `Error polling: ${legacy.message}\n`);
    }
    const held = polls.hold(legacy);
    res.on("close", () => {
      if (!res.writableFinished) held.gone();
    });
    let timer: ReturnType<typeof setInterval> | undefined;
    if (!held.ready) {
      try {
        // Finds a peer that vanished without a FIN (a host that died, a NAT
        // that forgot the flow) while the poll is held.
        req.socket.setKeepAlive(true, keepAliveMs);
      } catch {
        // Not a TCP socket (tests): the checks below still run.
      }
      timer = setInterval(() => {
        if (res.destroyed || req.socket.destroyed || !req.socket.writable) held.gone();
      }, pollHoldMs);
    }
    let outcome: PollOutcome;
    try {
      outcome = await held.outcome(() => !res.destroyed);
    } finally {
      clearInterval(timer);
    }
    switch (outcome.kind) {
      case "scrape":
        return finish(200, formatLegacyScrape({ ...outcome.task, timeoutMs: outcome.timeoutMs }));
      case "displaced":
        return finish(408, DISPLACED_TEXT);
      case "replaced":
        return finish(
          408,
          `Error WaitForScrapeInstruction: another client registered as ${fqdn}\n`,
        );
      case "draining":
      case "shutdown":
        return finish(503, SHUTTING_DOWN_TEXT);
      case "gone":
        return finish(499, null);
    }
  }

  async function push(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const finish = (code: number, body: string) => {
      answer(res, code, body);
      observe("/push", code, started);
    };
    const refuse = (reason: string, message: string) => {
      metrics.pushErrors.inc({ reason });
      logger.warn("Push refused", { protocol: "legacy", err: message });
      finish(500, `Error pushing: ${message}\n`);
    };
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      return finish(405, `Method ${req.method} is not allowed on /push\n`);
    }
    let response: LegacyResponse;
    try {
      response = await readLegacyResponse(
        req,
        options.maxPushHeaderBytes === undefined ? {} : {
          maxHeaderBytes: options.maxPushHeaderBytes,
        },
      );
    } catch (error) {
      return refuse("invalid", errorMessage(error));
    }
    const id = response.headers.find(([name]) => name.toLowerCase() === "id")?.[1] ?? "";
    if (id === "") return refuse("invalid", "the pushed response has no Id header");
    const entry = polls.sent(id);
    if (entry === undefined) {
      return refuse(
        "unknown_scrape",
        `no scrape ${JSON.stringify(id)} is waiting (unknown, finished or timed out)`,
      );
    }
    const grant = options.authorize ? await options.authorize(req, entry.legacy.fqdn) : true;
    const credential = typeof grant === "object" && "credential" in grant ? grant.credential : "";
    if (grant === false || credential !== entry.legacy.credential) {
      metrics.pushErrors.inc({ reason: "foreign_scrape" });
      logger.warn("Push refused", {
        protocol: "legacy",
        err: "wrong credential",
        fqdn: entry.legacy.fqdn,
      });
      return finish(403, `Error pushing: not allowed to answer for ${entry.legacy.fqdn}\n`);
    }
    if (!polls.claim(id, entry)) {
      return refuse("duplicate_push", `scrape ${JSON.stringify(id)} was already answered`);
    }
    options.bodyBound?.(req);

    const headers: HeaderField[] = forwardableHeaders(response.headers)
      .filter((field) => !PUSH_ONLY.has(field.name));
    if (response.major !== 0 && !framedByTransferEncoding(response)) {
      // The body is framed by its Content-Length: the coordinator checks it
      // and the scrape handler relays it (and refuses what is too large).
      for (const [name, value] of response.headers) {
        if (name.toLowerCase() === "content-length") {
          headers.push({ name: "content-length", value });
        }
      }
    }
    let body = response.body(entry.method);
    let error = "";
    if (response.major === 0) {
      // Upstream's synthetic answer to a failed scrape: HTTP/0.0, the error
      // text as the body.
      error = (await readText(body, MAX_ERROR_TEXT, true))?.trim() ||
        `the client reported status ${response.status}`;
      body = noBody();
    }
    try {
      await coordinator.acceptPush(
        {
          scrapeId: id,
          sessionId: entry.legacy.session.id,
          status: response.status,
          headers,
          error,
        },
        body,
      );
    } catch (failure) {
      if (failure instanceof CoordinatorError) {
        return refuse(pushErrorReason(failure), failure.message);
      }
      return refuse("relay_failed", `cannot relay the scrape: ${errorMessage(failure)}`);
    }
    finish(200, "");
  }

  return {
    poll,
    push,
    close: () => polls.close(),
    get sessionCount() {
      return polls.sessionCount;
    },
  };
}

async function* noBody(): AsyncGenerator<Uint8Array> {}

/** True when a pushed response's body is framed by Transfer-Encoding, as Go reads it. */
function framedByTransferEncoding(response: LegacyResponse): boolean {
  const http11 = response.major > 1 || (response.major === 1 && response.minor >= 1);
  return http11 && response.headers.some(([name]) => name.toLowerCase() === "transfer-encoding");
}

/**
 * Reads a small body as Latin-1 text. Null when it is longer than `limit`,
 * or, with `truncate`, the first `limit` bytes.
 */
async function readText(
  source: AsyncIterable<Uint8Array>,
  limit: number,
  truncate = false,
): Promise<string | null> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of source) {
    if (size + chunk.byteLength > limit) {
      if (!truncate) return null;
      parts.push(chunk.subarray(0, limit - size));
      size = limit;
      break;
    }
    parts.push(chunk);
    size += chunk.byteLength;
  }
  let text = "";
  for (const part of parts) {
    for (let i = 0; i < part.length; i += 4096) {
      text += String.fromCharCode(...part.subarray(i, i + 4096));
    }
  }
  return text;
}

function latin1Bytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
  return bytes;
}
