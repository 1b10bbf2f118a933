/**
 * The Connect transport from the client to the proxy: HTTP/1.1 (through
 * load balancers and HTTP proxies alike), optional TLS, and basic auth taken
 * from the proxy URL's userinfo as upstream clients do it. The fallback for
 * what the native path (client/transport/native_poll.ts, client/transport/native_push.ts) does
 * not cover (an HTTP proxy, a custom CA or client certificate): the agent
 * imports this module only then, so a plain client never loads connect-node.
 *
 * @module
 */

import type { LookupAddress } from "node:dns";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { isIP } from "node:net";
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { HttpsProxyAgent } from "https-proxy-agent";
import { ClientService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import type { PollStream } from "./native_poll.ts";
import type { PushSender } from "./native_push.ts";
import { pollThrough, pushThrough } from "./connect_calls.ts";
import { parseProxyUrl, type ProxyTlsOptions } from "./proxy_url.ts";
import { withAuthorization } from "./authorization.ts";

export { parseProxyUrl, type ProxyTlsOptions } from "./proxy_url.ts";

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

/** Options for {@linkcode createConnectPath}. */
export interface ConnectPathOptions extends ProxyTransportOptions {
  /** The Authorization header per call (`--auth.token-file`); the URL's userinfo wins. */
  authorization?: (() => string) | null;
  /** Holds the credential the Poll stream was opened with, for the pushes that follow. */
  authState?: { current: string | null };
}

/** Poll and Push through connect-es, on one connection pool. */
export interface ConnectPath {
  readonly poll: PollStream;
  readonly push: PushSender;
  /** Closes the pooled connections. */
  close(): void;
}

/**
 * Creates connect-es' Poll and Push for one proxy endpoint.
 *
 * @param options The transport's options and the per-call authorization.
 * @returns Poll, Push and a way to close the connections.
 */
export function createConnectPath(options: ConnectPathOptions): ConnectPath {
  const connection = createProxyTransport(options);
  const client = createClient(
    ClientService,
    options.authorization
      ? withAuthorization(connection.transport, options.authorization, options.authState)
      : connection.transport,
  );
  return { poll: pollThrough(client), push: pushThrough(client), close: connection.close };
}
