/**
 * The adapter for unmodified upstream `pushprox-client` binaries (v0.1.x,
 * v0.2.x and the Rancher fork): `POST /poll` and `POST /push` in upstream's
 * wire format, joined to the same coordinator as Connect clients.
 *
 * An upstream client has at most one poll outstanding and re-polls as soon as
 * a poll is answered, so its registration spans successive polls: the first
 * poll for an fqdn registers a session with the coordinator, later polls
 * reuse it, and it is closed when no poll has been held for
 * `sessionGraceMs`. A poll with nothing to do is held, as upstream holds it,
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
import { peerAddress } from "../lib/address.ts";
import { forwardableHeaders, type HeaderField } from "../lib/headers.ts";
import { hostKey } from "../lib/host.ts";
import type { Logger } from "../lib/logger.ts";
import { LEGACY_PUSH_TIMEOUT_HEADER, SCRAPE_TIMEOUT_HEADER } from "../lib/scrape_timeout.ts";
import {
  type Coordinator,
  CoordinatorError,
  type ScrapeTask,
  type Session,
} from "./coordinator.ts";
import { fqdnProblem } from "./identity.ts";
import { sourceKey } from "./rate_limit.ts";
import { formatLegacyScrape } from "./legacy_request.ts";
import { type LegacyResponse, readLegacyResponse } from "./legacy_response.ts";
import type { ProxyMetrics } from "./metrics.ts";
import { errorKind, pushErrorReason } from "./errors.ts";
import { errorMessage } from "../lib/error_message.ts";

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
const SENT_SLACK_MS = 5_000;

interface Taken {
  task: ScrapeTask;
  /** When it left the coordinator's queue; its timeout counts from here. */
  takenAt: number;
}

type Wake =
  | { kind: "displaced" | "gone" | "shutdown" }
  | { kind: "deliver"; taken: Taken };

interface HeldPoll {
  controller: AbortController;
}

interface LegacySession {
  key: string;
  fqdn: string;
  /** The credential it was opened with ("" without authorization). */
  credential: string;
  session: Session;
  log: Logger;
  /** The poll waiting for a scrape, if any. */
  poll: HeldPoll | null;
  /** Scrapes taken from the coordinator that no poll could carry yet. */
  undelivered: Taken[];
  grace: ReturnType<typeof setTimeout> | undefined;
  /** When its last poll ended, while no poll is held. */
  goneAt: number | undefined;
  closed: boolean;
}

interface SentScrape {
  legacy: LegacySession;
  method: string;
  expiresAt: number;
}

/**
 * Creates the legacy protocol handler.
 *
 * @param options Coordinator, logger, metrics, timing and the auth seam.
 * @returns The handler; call `close` when the server stops.
 */
export function createLegacyHandler(options: LegacyHandlerOptions): LegacyHandler {
  const { coordinator, logger, metrics } = options;
  const now = options.now ?? Date.now;
  const pollHoldMs = options.pollHoldMs ?? 60_000;
  const keepAliveMs = options.keepAliveMs ?? 60_000;
  const graceMs = options.sessionGraceMs ?? 10_000;
  /** Open sessions by host key. */
  const sessions = new Map<string, LegacySession>();
  /** Every session not closed yet, including ones a newer client replaced. */
  const live = new Set<LegacySession>();
  /** Scrapes written to a poll response, by scrape id, until pushed. */
  const sent = new Map<string, SentScrape>();
  let nextSweep = 0;
  let closed = false;

  for (const [path, codes] of [["/poll", ["200", "408"]], ["/push", ["200", "500"]]] as const) {
    for (const code of codes) metrics.httpRequests.inc({ code, path }, 0);
  }

  /** The fqdn's session; a string says why it cannot be had. */
  function open(
    fqdn: string,
    credential: string,
    source: string,
    peer: string,
  ): LegacySession | { status: number; message: string; retryAfterMs: number } {
    const key = hostKey(fqdn);
    const existing = sessions.get(key);
    if (existing !== undefined) {
      return existing.credential === credential
        ? existing
        : { status: 403, message: `${fqdn} is polled with another credential`, retryAfterMs: 0 };
    }
    let session: Session;
    try {
      session = coordinator.register({
        fqdn,
        labels: {},
        version: "",
        modules: [],
        protocol: "legacy",
        peerAddress: peer,
      }, { credential, source });
    } catch (error) {
      if (!(error instanceof CoordinatorError)) throw error;
      const entry = errorKind(error);
      // Limits answer with their own status; anything else keeps the poll
      // from registering, which upstream's clients take as 403.
      if (entry.metric === "limit_hits") metrics.limitHits.inc({ limit: entry.label });
      const status = entry.metric === "limit_hits" ? entry.status : 403;
      return { status, message: error.message, retryAfterMs: error.retryAfterMs };
    }
    metrics.registrations.inc();
    const legacy: LegacySession = {
      key,
      fqdn,
      credential,
      session,
      log: logger.with({ fqdn, session: session.id.slice(0, 8), protocol: "legacy" }),
      poll: null,
      undelivered: [],
      grace: undefined,
      goneAt: undefined,
      closed: false,
    };
    sessions.set(key, legacy);
    live.add(legacy);
    legacy.log.info("Client registered");
    return legacy;
  }

  /** Stops offering `legacy` to new polls; closes it after the grace period. */
  function retire(legacy: LegacySession): void {
    if (sessions.get(legacy.key) === legacy) sessions.delete(legacy.key);
    startGrace(legacy);
  }

  function startGrace(legacy: LegacySession): void {
    if (legacy.closed || closed) return;
    clearTimeout(legacy.grace);
    legacy.goneAt ??= now();
    legacy.grace = setTimeout(() => shut(legacy, "no poll within the grace period"), graceMs);
  }

  function shut(legacy: LegacySession, reason: string): void {
    if (legacy.closed) return;
    legacy.closed = true;
    clearTimeout(legacy.grace);
    // Disconnected since its last poll ended, not since the grace period did.
    const lastSeen = legacy.poll === null ? legacy.goneAt : undefined;
    live.delete(legacy);
    if (sessions.get(legacy.key) === legacy) sessions.delete(legacy.key);
    if (legacy.poll) wake(legacy, legacy.poll, { kind: "shutdown" });
    legacy.undelivered.length = 0;
    // Unanswered scrapes sent to this client fail now (503), not at their deadline.
    legacy.session.close(lastSeen);
    // Its entries in `sent` stay until they expire: while the proxy drains,
    // scrapes sent before may still be answered.
    legacy.log.info("Client session closed", { reason });
  }

  function wake(legacy: LegacySession, held: HeldPoll, why: Wake): void {
    if (legacy.poll === held) legacy.poll = null;
    held.controller.abort(why);
  }

  /** Gives a taken scrape to the waiting poll, or keeps it for the next one. */
  function dispatch(legacy: LegacySession, taken: Taken, first = false): void {
    if (legacy.closed) return;
    if (legacy.poll) wake(legacy, legacy.poll, { kind: "deliver", taken });
    else if (first) legacy.undelivered.unshift(taken);
    else legacy.undelivered.push(taken);
  }

  function takeUndelivered(legacy: LegacySession): Taken | null {
    for (;;) {
      const taken = legacy.undelivered.shift();
      if (taken === undefined) return null;
      if (remainingMs(taken) > 0) return taken;
    }
  }

  function remainingMs(taken: Taken): number {
    return taken.task.timeoutMs - (now() - taken.takenAt);
  }

  function sweepSent(): void {
    const at = now();
    if (at < nextSweep) return;
    nextSweep = at + 10_000;
    for (const [id, entry] of sent) if (entry.expiresAt < at) sent.delete(id);
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
    if (closed) return finish(503, "The proxy is shutting down\n");
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
    if (closed || coordinator.draining) return finish(503, "The proxy is shutting down\n");
    if (res.destroyed) return finish(499, null);

    const opened = open(
      fqdn,
      typeof grant === "object" && "credential" in grant ? grant.credential : "",
      sourceKey(req.socket.remoteAddress),
      peerAddress(req.socket),
    );
    if (!("session" in opened)) {
      logger.warn("Poll refused", { protocol: "legacy", fqdn, err: opened.message });
      if (opened.retryAfterMs > 0) {
        res.setHeader("retry-after", String(Math.ceil(opened.retryAfterMs / 1000)));
      }
      return finish(opened.status, `Error polling: ${opened.message}\n`);
    }
    const legacy = opened;
    if (legacy.poll) wake(legacy, legacy.poll, { kind: "displaced" });
    clearTimeout(legacy.grace);
    legacy.goneAt = undefined;
    const held: HeldPoll = { controller: new AbortController() };
    legacy.poll = held;
    res.on("close", () => {
      if (!res.writableFinished) wake(legacy, held, { kind: "gone" });
    });

    let taken = takeUndelivered(legacy);
    let replaced = false;
    let draining = false;
    if (taken === null) {
      try {
        // Finds a peer that vanished without a FIN (a host that died, a NAT
        // that forgot the flow) while the poll is held.
        req.socket.setKeepAlive(true, keepAliveMs);
      } catch {
        // Not a TCP socket (tests): the checks below still run.
      }
      const timer = setInterval(() => {
        if (res.destroyed || req.socket.destroyed || !req.socket.writable) {
          wake(legacy, held, { kind: "gone" });
        }
      }, pollHoldMs);
      try {
        const task = await legacy.session.next(held.controller.signal);
        if (task !== null) taken = { task, takenAt: now() };
      } catch (error) {
        if (!(error instanceof CoordinatorError)) throw error;
        if (error.kind === "replaced") replaced = true;
        else if (error.kind === "draining") draining = true;
        else throw error;
      } finally {
        clearInterval(timer);
      }
    }
    if (legacy.poll === held) legacy.poll = null;
    const why = held.controller.signal.aborted ? held.controller.signal.reason as Wake : null;
    if (why?.kind === "deliver") {
      if (taken === null) taken = why.taken;
      else dispatch(legacy, why.taken, true);
    }
    if (replaced) {
      legacy.log.info("Client replaced by a newer registration for its fqdn");
      retire(legacy);
    } else if (legacy.poll === null) {
      startGrace(legacy);
    }

    if (taken !== null) {
      const cannotCarry = res.destroyed || why?.kind === "gone" || why?.kind === "displaced";
      if (cannotCarry) {
        // Not lost: the next poll for this fqdn carries it.
        dispatch(legacy, taken, true);
        return why?.kind === "displaced" ? finish(408, DISPLACED_TEXT) : finish(499, null);
      }
      const timeoutMs = Math.max(1, remainingMs(taken));
      sweepSent();
      sent.set(taken.task.id, {
        legacy,
        method: taken.task.method,
        expiresAt: now() + timeoutMs + SENT_SLACK_MS,
      });
      legacy.log.debug("Sending scrape", { scrape_id: taken.task.id, url: taken.task.url });
      return finish(200, formatLegacyScrape({ ...taken.task, timeoutMs }));
    }
    if (replaced) {
      return finish(408, `Error WaitForScrapeInstruction: another client registered as ${fqdn}\n`);
    }
    if (draining) return finish(503, "The proxy is shutting down\n");
    switch (why?.kind) {
      case "displaced":
        return finish(408, DISPLACED_TEXT);
      case "shutdown":
        return finish(503, "The proxy is shutting down\n");
      default:
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
    sweepSent();
    const entry = sent.get(id);
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
    if (sent.get(id) !== entry) {
      return refuse("duplicate_push", `scrape ${JSON.stringify(id)} was already answered`);
    }
    sent.delete(id);
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
    close() {
      if (closed) return;
      closed = true;
      for (const legacy of [...live]) shut(legacy, "the proxy is shutting down");
    },
    get sessionCount() {
      return sessions.size;
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
