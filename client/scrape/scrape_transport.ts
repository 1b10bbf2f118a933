/**
 * The client's HTTP request to a local target: native I/O for http targets
 * (client/scrape/native_scrape.ts), node:http for https ones; not fetch, because
 * fetch decompresses gzip bodies: the proxy must pass the target's bytes and
 * Content-Encoding through untouched.
 *
 * @module
 */

import http from "node:http";
import https from "node:https";
import { rawHeaderPairs } from "../../lib/headers.ts";
import { createNativeScrapeTransport } from "./native_scrape.ts";
import type { ClosableScrapeTransport, ScrapeTransport } from "./scrape_types.ts";

export type { ScrapeTransport, TargetResponse } from "./scrape_types.ts";

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

/** Options for {@linkcode createScrapeTransport}. */
export interface ScrapeTransportOptions {
  tls?: TargetTlsOptions;
  /** Largest response header block. @default {16384} */
  maxHeaderBytes?: number;
  /**
   * Plain-http targets over native I/O (client/scrape/native_scrape.ts); https
   * targets keep node:http (its CA, client certificate and verification
   * options). False uses node:http for all. @default {true}
   */
  native?: boolean;
}

/**
 * Creates the transport to targets, with keep-alive connection pools:
 * native I/O for http targets, node:http for https ones.
 *
 * @param options TLS settings for https targets.
 * @returns The transport; `close()` ends its pooled native connections.
 */
export function createScrapeTransport(
  options: ScrapeTransportOptions = {},
): ClosableScrapeTransport {
  const viaNode = createNodeScrapeTransport(options);
  if (options.native === false) return Object.assign(viaNode, { close() {} });
  const native = createNativeScrapeTransport(
    options.maxHeaderBytes !== undefined ? { maxHeaderBytes: options.maxHeaderBytes } : {},
  );
  return Object.assign(
    // (The href's scheme: `url.protocol` makes a new string per scrape.)
    (url: URL, init: Parameters<ScrapeTransport>[1]) =>
      url.href.startsWith("http:") ? native(url, init) : viaNode(url, init),
    { close: () => native.close() },
  );
}

function createNodeScrapeTransport(options: ScrapeTransportOptions): ScrapeTransport {
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
        response.once("close", () => init.signal.removeEventListener("abort", onAbort));
        resolve({
          status: response.statusCode ?? 502,
          headers: [...rawHeaderPairs(response.rawHeaders)],
          body: response,
        });
      });
      // node:http's own `signal` does not end a request whose target never
      // answers (seen with Deno 2.9.6): the deadline destroys it, and the
      // body being read, explicitly.
      const onAbort = () => {
        request.destroy(init.signal.reason);
        reject(init.signal.reason);
      };
      init.signal.addEventListener("abort", onAbort, { once: true });
      request.on("error", (error) => {
        init.signal.removeEventListener("abort", onAbort);
        reject(error);
      });
      request.end();
    });
  };
}
