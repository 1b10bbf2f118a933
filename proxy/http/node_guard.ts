/**
 * What the node:http edge checks of every request before it is routed:
 * the request's authority, and the lifetime of its body (the body idle
 * timeout, and the drain of a body still arriving after the answer).
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { authorityProblem } from "../../lib/authority.ts";
import { formatDuration } from "../../lib/duration.ts";
import type { Logger } from "../../lib/logger.ts";
import type { ProxyMetrics } from "../core/metrics.ts";

/** Most request body bytes read and dropped after the answer, before the connection is closed. */
export const DRAIN_MAX_BYTES = 64 * 1024;
/** Longest wait for the rest of a request body after the answer, before the connection is closed. */
export const DRAIN_MAX_MS = 5_000;

/** Options for {@linkcode createBodyGuard}. */
export interface BodyGuardOptions {
  /** 0 disables the body idle timeout. */
  bodyIdleTimeoutMs: number;
  /** Whether a scrape's deadline bounds the request's body (a matched Push). */
  isBound(req: IncomingMessage): boolean;
  metrics: ProxyMetrics;
  logger: Logger;
}

/**
 * Creates the body guard of the node:http edge.
 *
 * @param options Timeout, bound bodies, metrics and logger.
 * @returns The guard, called once per request before it is routed.
 */
export function createBodyGuard(
  options: BodyGuardOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const { bodyIdleTimeoutMs, metrics, logger } = options;
  return guardBody;

  /**
   * Bounds the lifetime of a request body: one that is still arriving after
   * the body idle timeout (a Push bound to a scrape excepted) gets 408 and
   * its connection closed; one still arriving when the answer has been sent
   * is read and dropped up to {@linkcode DRAIN_MAX_BYTES} and
   * {@linkcode DRAIN_MAX_MS}, then its connection is closed.
   */
  function guardBody(req: IncomingMessage, res: ServerResponse): void {
    // Errors of a request or response end that request, never the process.
    req.on("error", (error) => logger.debug("Request stream error", { err: error.message }));
    res.on("error", (error) => logger.debug("Response stream error", { err: error.message }));
    // HTTP/1 requests without Content-Length or Transfer-Encoding (scrapes) have no body.
    const length = req.headers["content-length"];
    if (
      req.httpVersionMajor !== 2 && req.headers["transfer-encoding"] === undefined &&
      (length === undefined || length === "0")
    ) {
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    /** Set when the body idle timeout answers and closes the request itself. */
    let timedOut = false;
    if (bodyIdleTimeoutMs > 0) {
      timer = setTimeout(() => {
        if (req.complete || res.writableFinished || res.destroyed || options.isBound(req)) return;
        metrics.limitHits.inc({ limit: "body_idle_timeout" });
        logger.warn("Request body too slow: closing the connection", {
          remote: req.socket?.remoteAddress,
          target: req.url?.slice(0, 200),
          timeout: formatDuration(bodyIdleTimeoutMs),
        });
        timedOut = true;
        if (res.headersSent) return cut(req);
        answerAndClose(
          req,
          res,
          408,
          `Request Timeout: the request body did not arrive within --web.body-idle-timeout=${
            formatDuration(bodyIdleTimeoutMs)
          }\n`,
          true,
        );
      }, bodyIdleTimeoutMs);
    }
    res.once("close", () => clearTimeout(timer));
    res.once("finish", () => {
      clearTimeout(timer);
      if (timedOut || req.complete || req.destroyed) return;
      // Answered before the body ended: drain a little, then close.
      let bytes = 0;
      const stop = () => {
        clearTimeout(deadline);
        req.off("data", count);
      };
      const over = () => {
        stop();
        metrics.limitHits.inc({ limit: "body_drain" });
        logger.debug("Unread request body after the answer: closing the connection", {
          remote: req.socket?.remoteAddress,
          target: req.url?.slice(0, 200),
        });
        cut(req);
      };
      const count = (chunk: Uint8Array) => {
        bytes += chunk.byteLength;
        if (bytes > DRAIN_MAX_BYTES) over();
      };
      const deadline = setTimeout(over, DRAIN_MAX_MS);
      req.on("data", count);
      req.once("end", stop);
      req.once("close", stop);
      // A connection closed under the request (server shutdown) ends the drain too.
      req.socket?.once("close", stop);
      req.resume();
    });
  }
}

/**
 * Why a request has no usable authority, or null: the authority of an
 * absolute-form http target, else the Host header (HTTP/1) or `:authority`
 * (HTTP/2), of which there must be exactly one.
 */
export function requestAuthorityProblem(
  req: IncomingMessage | null,
  target: string,
): string | null {
  if (!target.startsWith("/") || req === null) {
    const absolute = /^http:\/\/([^/?#]*)/i.exec(target);
    // Other schemes and forms get their answer from the scrape handler.
    if (absolute === null) return null;
    const authority = absolute[1]!;
    // URLs with user info are refused by the scrape handler, with the reason.
    if (authority.includes("@")) return null;
    const problem = authorityProblem(authority);
    return problem === null
      ? null
      : `Malformed request target ${JSON.stringify(target.slice(0, 200))}: ${
        problem.replace("the Host", "its authority")
      }`;
  }
  if (req.httpVersionMajor === 2) {
    return authorityProblem((req as unknown as { authority?: string }).authority);
  }
  let hosts = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === "host") hosts++;
  }
  if (hosts > 1) return "the request has more than one Host header";
  return authorityProblem(req.headers.host);
}

/**
 * Ends a response with a plain-text error and closes its connection (HTTP/1)
 * or stream (HTTP/2). With `now`, closes right after the answer is written.
 */
export function answerAndClose(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  text: string,
  now = false,
): void {
  if (res.headersSent || res.destroyed || res.writableEnded) return cut(req);
  const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
  // HTTP/2 forbids connection headers; its stream ends with the response.
  if (req.httpVersionMajor !== 2) headers["connection"] = "close";
  res.writeHead(status, headers);
  res.end(text, now ? () => cut(req) : undefined);
}

/** Closes a request's connection (HTTP/1) or cancels its stream (HTTP/2). */
export function cut(req: IncomingMessage): void {
  if (req.httpVersionMajor === 2) {
    const stream = (req as unknown as { stream?: { close(code?: number): void } }).stream;
    stream?.close(0x8); // NGHTTP2_CANCEL
    return;
  }
  req.socket?.destroy();
}
