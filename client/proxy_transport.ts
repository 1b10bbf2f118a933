/**
 * The Connect transport from the client to the proxy: HTTP/1.1 (through
 * load balancers and HTTP proxies alike), optional TLS, and basic auth taken
 * from the proxy URL's userinfo as upstream clients do it.
 *
 * @module
 */

import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";

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

/**
 * Creates the transport.
 *
 * @param options URL, TLS and limits.
 * @returns The Connect transport.
 */
export function createProxyTransport(
  options: ProxyTransportOptions,
): Transport {
  const { baseUrl, authorization } = parseProxyUrl(options.proxyUrl);
  const interceptors: Interceptor[] = [];
  if (authorization !== undefined) {
    interceptors.push((next) => (request) => {
      request.header.set("authorization", authorization);
      return next(request);
    });
  }
  const tls = options.tls ?? {};
  return createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    useBinaryFormat: true,
    interceptors,
    readMaxBytes: options.readMaxBytes ?? 1 << 20,
    nodeOptions: {
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
    },
  });
}
