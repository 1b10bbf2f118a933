/**
 * A test double of upstream PushProx's `pushprox-client` (v0.1.x/v0.2.x and
 * the Rancher fork), written from the documented wire format
 * (shared/anchors/pushprox.md, sections B and D), not from its code. It
 * behaves like the Go client on the wire:
 *
 * - **Poll.** `POST <proxy-url>/poll` with the fqdn as the body (no
 *   Content-Type); the status is not checked, the body is parsed as an
 *   HTTP/1.1 request (Go's `http.ReadRequest`). A body that does not parse
 *   (the proxy's 408, a load balancer's HTML page) is a poll error, followed
 *   by an exponential back-off (initial wait ×1.5 up to the max wait, ±50 %
 *   jitter, reset after every good poll). After a good poll the scrape starts
 *   in the background and the next poll is sent at once.
 * - **Scrape.** The timeout is `X-Prometheus-Scrape-Timeout-Seconds` (an
 *   error when missing); `_scheme=https` switches to https; the URL's host
 *   must equal the fqdn; with `useLocalhost` (Rancher's `--use-localhost`) a
 *   URL with an explicit port is dialled on 127.0.0.1. The request, with all
 *   the headers the proxy sent (`Id` included), goes to the target over
 *   node:http, which like Go does not decompress.
 * - **Push.** The target's response with `Id` and
 *   `X-Prometheus-Scrape-Timeout: <remaining seconds, %f>` added, written as
 *   Go's `http.Response.Write` does (chunked when the target's was,
 *   Content-Length when known, else `Connection: close` and close-delimited),
 *   buffered and POSTed to `<proxy-url>/push`. A failed scrape is pushed as
 *   `HTTP/0.0 500 Internal Server Error` with the error text as the body.
 *   The push's status is recorded here; the Go client ignores it.
 *
 * @example In a test
 * ```ts
 * import { startLegacyClient } from "./legacy_client_double.ts";
 * const client = startLegacyClient({
 *   proxyUrl: "http://127.0.0.1:8080",
 *   fqdn: "node-a.example",
 *   useLocalhost: true,
 * });
 * // Wait until the proxy lists it (`/clients`), then scrape
 * // http://node-a.example:<port>/metrics through the proxy.
 * await client.stop();
 * ```
 *
 * It also runs as a program, with the Go client's flag names:
 * `deno run -A tests/legacy_client_double.ts --fqdn=node-a --proxy-url=http://127.0.0.1:8080 [--use-localhost] [--proxy.retry.initial-wait=1s] [--proxy.retry.max-wait=5s]`,
 * printing one JSON line per event on stderr.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { errorMessage } from "../lib/error_message.ts";
import { sleep } from "../lib/sleep.ts";
import {
  concat,
  fetchTarget,
  formatGoResponse,
  headerValue,
  latin1,
  latin1Bytes,
  ParsedPollRequest,
  parsePollRequest,
  PushFraming,
} from "./legacy_wire.ts";

export { parsePollRequest, type PushFraming } from "./legacy_wire.ts";

/** Options for {@linkcode startLegacyClient}. */
export interface LegacyClientOptions {
  /** Like `--proxy-url`; userinfo becomes basic auth, as in Go. */
  proxyUrl: string;
  /** Like `--fqdn`: the name registered and the only host scraped. */
  fqdn: string;
  /** Rancher's `--use-localhost`. @default {false} */
  useLocalhost?: boolean;
  /** Like `--proxy.retry.initial-wait`. @default {1000} */
  retryInitialWaitMs?: number;
  /** Like `--proxy.retry.max-wait`. @default {5000} */
  retryMaxWaitMs?: number;
  /**
   * Body framing of pushes. "auto" is Go's: chunked when the target's was,
   * Content-Length when known, else close-delimited. @default {"auto"}
   */
  pushFraming?: PushFraming;
  /** Called for every event as it happens. */
  onEvent?: (event: LegacyClientEvent) => void;
}

/** Something the double did or saw. */
export type LegacyClientEvent =
  | { type: "poll_sent"; at: number }
  /** A poll answered with a parsable request: a scrape starts. */
  | {
    type: "poll_scrape";
    at: number;
    status: number;
    id: string;
    url: string;
    /** The X-Prometheus-Scrape-Timeout-Seconds value received. */
    timeout: string;
  }
  /** A poll that failed: transport error or unparsable body. */
  | { type: "poll_error"; at: number; status: number | null; error: string; body: string }
  /** A scrape that failed; its error is pushed as HTTP/0.0 500. */
  | { type: "scrape_error"; at: number; id: string; error: string }
  /** A push answered by the proxy (status recorded; Go ignores it). */
  | { type: "push"; at: number; id: string; status: number; body: string; error: boolean }
  /** A push that failed in transport. */
  | { type: "push_error"; at: number; id: string; error: string };

/** A running double. */
export interface LegacyClient {
  readonly fqdn: string;
  /** All events so far, oldest first. */
  readonly events: readonly LegacyClientEvent[];
  /** Counters named like the Go client's metrics. */
  readonly counters: { pollErrors: number; scrapeErrors: number; pushErrors: number };
  /** Resolves with the first event, past or future, matching `predicate`. */
  waitFor(
    predicate: (event: LegacyClientEvent) => boolean,
    timeoutMs?: number,
  ): Promise<LegacyClientEvent>;
  /** Stops polling (aborting the held poll) and waits for scrapes in flight. */
  stop(): Promise<void>;
}

/**
 * Starts the double: it polls until stopped.
 *
 * @param options Proxy URL, fqdn and behaviour switches.
 * @returns The running double.
 */
export function startLegacyClient(options: LegacyClientOptions): LegacyClient {
  const base = new URL(options.proxyUrl.replace(/\/+$/, "") + "/");
  const auth = base.username || base.password
    ? "Basic " + btoa(`${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`)
    : null;
  base.username = "";
  base.password = "";
  const pollUrl = new URL("poll", base);
  const pushUrl = new URL("push", base);
  const initialWait = options.retryInitialWaitMs ?? 1000;
  const maxWait = options.retryMaxWaitMs ?? 5000;
  const framing = options.pushFraming ?? "auto";
  const stopping = new AbortController();
  const events: LegacyClientEvent[] = [];
  const listeners = new Set<() => void>();
  const inFlight = new Set<Promise<void>>();
  const counters = { pollErrors: 0, scrapeErrors: 0, pushErrors: 0 };

  function emit(event: LegacyClientEvent): void {
    events.push(event);
    options.onEvent?.(event);
    for (const listener of [...listeners]) listener();
  }

  function proxyHeaders(): Record<string, string> {
    return auth === null ? {} : { authorization: auth };
  }

  async function pollOnce(): Promise<void> {
    emit({ type: "poll_sent", at: Date.now() });
    const response = await fetch(pollUrl, {
      method: "POST",
      body: new TextEncoder().encode(options.fqdn),
      headers: proxyHeaders(),
      signal: stopping.signal,
    });
    const body = new Uint8Array(await response.arrayBuffer());
    let request: ParsedPollRequest;
    try {
      request = parsePollRequest(body);
    } catch (error) {
      throw Object.assign(new Error(errorMessage(error)), {
        status: response.status,
        body: latin1(body),
      });
    }
    const id = headerValue(request.headers, "id");
    emit({
      type: "poll_scrape",
      at: Date.now(),
      status: response.status,
      id,
      url: request.url,
      timeout: headerValue(request.headers, "x-prometheus-scrape-timeout-seconds"),
    });
    const job = scrape(request, id).finally(() => inFlight.delete(job));
    inFlight.add(job);
  }

  async function loop(): Promise<void> {
    let wait = initialWait;
    while (!stopping.signal.aborted) {
      try {
        await pollOnce();
        wait = initialWait;
      } catch (error) {
        if (stopping.signal.aborted) return;
        const { status, body } = error as { status?: number; body?: string };
        counters.pollErrors++;
        emit({
          type: "poll_error",
          at: Date.now(),
          status: status ?? null,
          error: errorMessage(error),
          body: body ?? "",
        });
        await sleep(wait * (0.5 + Math.random()), { signal: stopping.signal }).catch(() => {});
        wait = Math.min(wait * 1.5, maxWait);
      }
    }
  }

  async function scrape(request: ParsedPollRequest, id: string): Promise<void> {
    const timeoutText = headerValue(request.headers, "x-prometheus-scrape-timeout-seconds");
    const seconds = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(timeoutText)
      ? Number(timeoutText)
      : NaN;
    const deadline = Date.now() + (Number.isFinite(seconds) ? seconds * 1000 : 0);
    try {
      if (Number.isNaN(seconds)) {
        throw new Error(
          `strconv.ParseFloat: parsing ${JSON.stringify(timeoutText)}: invalid syntax`,
        );
      }
      const url = new URL(request.url);
      if (url.searchParams.get("_scheme") === "https") {
        url.protocol = "https:";
        url.searchParams.delete("_scheme");
        url.searchParams.sort();
      }
      if (url.hostname !== options.fqdn) throw new Error("scrape target doesn't match client fqdn");
      const dialHost = options.useLocalhost && url.port !== "" ? "127.0.0.1" : url.hostname;
      const target = await fetchTarget(url, dialHost, request, deadline);
      const chosen: Exclude<PushFraming, "auto"> = framing !== "auto"
        ? framing
        : target.chunked
        ? "chunked"
        : target.hasLength
        ? "content-length"
        : "close";
      await push(
        id,
        formatGoResponse({
          ...target,
          headers: [
            ...target.headers,
            ["Id", id],
            ["X-Prometheus-Scrape-Timeout", secondsLeft(deadline)],
          ],
        }, chosen),
        deadline,
        false,
      );
    } catch (error) {
      const message = errorMessage(error);
      counters.scrapeErrors++;
      emit({ type: "scrape_error", at: Date.now(), id, error: message });
      const bytes = concat([
        latin1Bytes(
          `HTTP/0.0 500 Internal Server Error\r\nId: ${id}\r\nX-Prometheus-Scrape-Timeout: ${
            secondsLeft(deadline)
          }\r\n\r\n`,
        ),
        new TextEncoder().encode(message),
      ]);
      await push(id, bytes, deadline, true);
    }
  }

  async function push(
    id: string,
    bytes: Uint8Array<ArrayBuffer>,
    deadline: number,
    error: boolean,
  ) {
    try {
      const response = await fetch(pushUrl, {
        method: "POST",
        body: bytes,
        headers: proxyHeaders(),
        signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
      });
      emit({
        type: "push",
        at: Date.now(),
        id,
        status: response.status,
        body: await response.text(),
        error,
      });
    } catch (failure) {
      counters.pushErrors++;
      emit({ type: "push_error", at: Date.now(), id, error: errorMessage(failure) });
    }
  }

  const running = loop();

  return {
    fqdn: options.fqdn,
    events,
    counters,
    waitFor(predicate, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.find(predicate);
          if (found === undefined) return;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(
            new Error(
              `Timed out after ${timeoutMs}ms waiting for an event of ${options.fqdn}; events: ${
                JSON.stringify(events.slice(-10))
              }`,
            ),
          );
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    async stop() {
      stopping.abort();
      await running;
      await Promise.allSettled([...inFlight]);
    },
  };
}

/** Go's `fmt.Sprintf("%f", seconds)` of the time left. */
function secondsLeft(deadline: number): string {
  return ((deadline - Date.now()) / 1000).toFixed(6);
}

function parseDurationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (match === null) throw new Error(`Cannot parse duration ${JSON.stringify(text)}`);
  return Number(match[1]) * { ms: 1, s: 1000, m: 60_000 }[match[2] as "ms" | "s" | "m"];
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "fqdn": { type: "string" },
      "proxy-url": { type: "string" },
      "use-localhost": { type: "boolean", default: false },
      "proxy.retry.initial-wait": { type: "string", default: "1s" },
      "proxy.retry.max-wait": { type: "string", default: "5s" },
    },
  });
  if (!values.fqdn || !values["proxy-url"]) {
    console.error("usage: legacy_client_double.ts --fqdn=NAME --proxy-url=URL [--use-localhost]");
    Deno.exit(2);
  }
  const client = startLegacyClient({
    fqdn: values.fqdn,
    proxyUrl: values["proxy-url"],
    useLocalhost: values["use-localhost"],
    retryInitialWaitMs: parseDurationMs(values["proxy.retry.initial-wait"]),
    retryMaxWaitMs: parseDurationMs(values["proxy.retry.max-wait"]),
    onEvent: (event) => console.error(JSON.stringify(event)),
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => client.stop().then(() => Deno.exit(0)));
  }
}
