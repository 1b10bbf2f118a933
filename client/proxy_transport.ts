/**
 * The Connect transport from the client to the proxy: HTTP/1.1 (through
 * load balancers and HTTP proxies alike), optional TLS, and basic auth taken
 * from the proxy URL's userinfo as upstream clients do it.
 *
 * @module
 */

import type { LookupAddress } from "node:dns";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { isIP } from "node:net";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { HttpsProxyAgent } from "https-proxy-agent";

/** TLS settings for the connection to the proxy. */
export interface ProxyTlsOptions {
  /** PEM CA bundle replacing the system roots. */
  ca?: string;
  /** PEM client certificate for mTLS. */
  cert?: string;
  /** PEM private key. */
  key?: string;
}

/** Options for {@linkcode createProxyTransport}. */
export interface ProxyTransportOptions {
  /** The proxy's URL, e.g. "https://user:pass@proxy.example.com/pushprox/". */
  proxyUrl: string;
  tls?: ProxyTlsOptions;
  /** Largest message accepted from the proxy. @default {1048576} */
  readMaxBytes?: number;
  /**
   * Connect to this IP address instead of resolving the URL's host. The host
   * name still goes into the Host header, TLS SNI and certificate checks.
   */
  address?: string | null;
  /** Tunnel through this HTTP proxy with CONNECT (from HTTPS_PROXY etc.). */
  httpProxy?: URL | null;
}

/**
 * Parses and normalizes `--proxy-url`.
 *
 * @param text The URL.
 * @returns The base URL without credentials, and the credentials if any.
 * @throws {TypeError} When it is not an http(s) URL.
 */
export function parseProxyUrl(
  text: string,
): { baseUrl: string; authorization?: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(`Cannot use --proxy-url "${text}": not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(
      `Cannot use --proxy-url "${text}": the scheme must be http or https`,
    );
  }
  let authorization: string | undefined;
  if (url.username !== "" || url.password !== "") {
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    authorization = "Basic " +
      btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${pass}`)));
    url.username = "";
    url.password = "";
  }
  url.search = "";
  url.hash = "";
  const baseUrl = url.toString().replace(/\/+$/, "");
  return authorization === undefined ? { baseUrl } : { baseUrl, authorization };
}

/** A transport with its own connection pool. */
export interface ProxyConnection {
  readonly transport: Transport;
  /** Closes the pooled connections. */
  close(): void;
}

/**
 * Creates the transport. Each one has its own connection pool, so that
 * pushes travel to the same proxy (address) as the stream they answer.
 *
 * @param options URL, TLS, address, HTTP proxy and limits.
 * @returns The Connect transport and a way to close its connections.
 */
export function createProxyTransport(
  options: ProxyTransportOptions,
): ProxyConnection {
  const { baseUrl, authorization } = parseProxyUrl(options.proxyUrl);
  const interceptors: Interceptor[] = [];
  if (authorization !== undefined) {
    interceptors.push((next) => (request) => {
      request.header.set("authorization", authorization);
      return next(request);
    });
  }
  const tls = options.tls ?? {};
  const agent = options.httpProxy
    ? new HttpsProxyAgent(options.httpProxy, { keepAlive: true })
    : baseUrl.startsWith("https:")
    ? new HttpsAgent({ keepAlive: true })
    : new HttpAgent({ keepAlive: true });
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    useBinaryFormat: true,
    interceptors,
    readMaxBytes: options.readMaxBytes ?? 1 << 20,
    nodeOptions: {
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
      ...(options.address ? { lookup: pinnedLookup(options.address) } : {}),
      agent,
    },
  });
  return { transport, close: () => agent.destroy() };
}

type LookupCallback = (
  error: Error | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/** A `lookup` for node:net that answers every name with one address. */
function pinnedLookup(
  address: string,
): (hostname: string, options: unknown, callback: LookupCallback) => void {
  const family = isIP(address) || 4;
  return (_hostname, options, callback) => {
    if (typeof options === "object" && options !== null && (options as { all?: boolean }).all) {
      callback(null, [{ address, family }]);
    } else {
      callback(null, address, family);
    }
  };
}
