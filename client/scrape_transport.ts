/**
 * The client's HTTP request to a local target. Built on node:http rather than
 * fetch because fetch decompresses gzip bodies: the proxy must pass the
 * target's bytes and Content-Encoding through untouched.
 *
 * @module
 */

import http from "node:http";
import https from "node:https";
import type { HeaderField } from "../lib/headers.ts";
import { rawHeaderPairs } from "../lib/headers.ts";

/** A target's response, body not yet read. */
export interface TargetResponse {
  status: number;
  /** Header fields in arrival order. */
  headers: [string, string][];
  /**
   * The body as it arrives, bytes as the target sent them (not decoded, so
   * that Content-Length and Content-Encoding stay true); stops with an error
   * when the signal aborts.
   */
  body: AsyncIterable<Uint8Array>;
}

/** TLS settings for https targets. */
export interface TargetTlsOptions {
  /** PEM CA bundle replacing the system roots. */
  ca?: string;
  /** PEM client certificate. */
  cert?: string;
  /** PEM private key. */
  key?: string;
  /** Skip certificate verification. */
  insecureSkipVerify?: boolean;
}

/** Sends one request to a target. Injected so tests can replace it. */
export type ScrapeTransport = (
  url: URL,
  init: {
    method: string;
    headers: readonly HeaderField[];
    signal: AbortSignal;
  },
) => Promise<TargetResponse>;

/** Options for {@linkcode createScrapeTransport}. */
export interface ScrapeTransportOptions {
  tls?: TargetTlsOptions;
  /** Largest response header block. @default {16384} */
  maxHeaderBytes?: number;
}

/**
 * Creates the node:http based transport, with keep-alive connection pools.
 *
 * @param options TLS settings for https targets.
 * @returns The transport.
 */
export function createScrapeTransport(
  options: ScrapeTransportOptions = {},
): ScrapeTransport {
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const tls = options.tls ?? {};
  const httpsAgent = new https.Agent({
    keepAlive: true,
    maxSockets: 64,
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
    rejectUnauthorized: !tls.insecureSkipVerify,
  });
  const maxHeaderSize = options.maxHeaderBytes ?? 16384;

  return function send(url, init) {
    return new Promise((resolve, reject) => {
      init.signal.throwIfAborted();
      const secure = url.protocol === "https:";
      const headers: Record<string, string | string[]> = {};
      for (const { name, value } of init.headers) {
        // Host (set by --use-localhost) must be a single string for node:http.
        if (name === "host") headers[name] = value;
        else ((headers[name] ??= []) as string[]).push(value);
      }
      const request = (secure ? https : http).request(url, {
        method: init.method,
        headers,
        agent: secure ? httpsAgent : httpAgent,
        signal: init.signal,
        maxHeaderSize,
      }, (response) => {
        resolve({
          status: response.statusCode ?? 502,
          headers: [...rawHeaderPairs(response.rawHeaders)],
          body: response,
        });
      });
      request.on("error", reject);
      request.end();
    });
  };
}
