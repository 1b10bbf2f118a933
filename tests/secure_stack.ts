/**
 * A proxy with TLS and authentication for security tests, plus a minimal
 * Connect client that answers scrapes, all in-process on loopback.
 *
 * @module
 */

import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClientService } from "../gen/pushprox/v1/pushprox_pb.ts";
import { parseWebConfig } from "../lib/web_config.ts";
import { createTlsListener } from "../lib/tls_server.ts";
import { createAuthenticator, defaultAuthConfig, parseAuthConfig } from "../proxy/auth/auth.ts";
import { createProxy, type Proxy, type ProxyOptions, serveProxy } from "../proxy/http/server.ts";
import { testLogger } from "./stack.ts";

/** A running proxy. */
export interface SecureProxy {
  proxy: Proxy;
  port: number;
  /** "https://localhost:port" or "http://127.0.0.1:port". */
  url: string;
  tls: boolean;
  /** Re-reads TLS files now (instead of waiting for the interval). */
  reloadTls(): Promise<boolean>;
  close(): Promise<void>;
}

/** Options for {@linkcode startSecureProxy}. */
export interface SecureProxyOptions {
  /** Web config YAML; relative paths are resolved against `dir`. */
  web?: string;
  /** Auth config YAML. */
  auth?: string;
  /** Folder of the config files. */
  dir?: string;
  proxy?: Partial<ProxyOptions>;
  headersTimeoutMs?: number;
  maxHeaderBytes?: number;
}

/**
 * Starts a proxy on 127.0.0.1 with the given configuration.
 *
 * @param options Config texts and overrides.
 * @returns The proxy.
 */
export async function startSecureProxy(options: SecureProxyOptions = {}): Promise<SecureProxy> {
  const dir = options.dir ?? Deno.cwd();
  const web = parseWebConfig(options.web ?? "", `${dir}/web.yml`);
  const authConfig = options.auth === undefined
    ? defaultAuthConfig(web.basicAuthUsers)
    : parseAuthConfig(options.auth, `${dir}/auth.yml`, web.basicAuthUsers);
  const logger = testLogger();
  const tls = web.tls
    ? await createTlsListener(web.tls, { logger, reloadIntervalMs: 60_000 })
    : null;
  const proxy = createProxy({
    logger,
    defaultMetrics: false,
    auth: createAuthenticator(authConfig, { users: web.basicAuthUsers }),
    ...options.proxy,
  });
  const stop = new AbortController();
  const serving = await serveProxy(proxy, {
    hostname: "127.0.0.1",
    port: 0,
    signal: stop.signal,
    logger,
    headers: web.headers,
    ...(tls ? { tls } : {}),
    ...(options.headersTimeoutMs ? { headersTimeoutMs: options.headersTimeoutMs } : {}),
    ...(options.maxHeaderBytes ? { maxHeaderBytes: options.maxHeaderBytes } : {}),
  });
  const port = serving.address.port;
  return {
    proxy,
    port,
    tls: tls !== null,
    url: tls ? `https://localhost:${port}` : `http://127.0.0.1:${port}`,
    reloadTls: () =>
      tls
        ? tls.reload(serving.server as unknown as import("node:tls").Server)
        : Promise.resolve(false),
    async close() {
      stop.abort();
      await serving.finished;
    },
  };
}

/** TLS material for a Connect or HTTPS client. */
export interface ClientTls {
  ca?: string;
  cert?: string;
  key?: string;
}

/**
 * A Connect client of the proxy's ClientService.
 *
 * @param url The proxy's base URL.
 * @param options TLS and a bearer token.
 * @returns The client.
 */
export function connectClient(
  url: string,
  options: { tls?: ClientTls; token?: string; authorization?: string } = {},
): Client<typeof ClientService> {
  const authorization = options.authorization ??
    (options.token ? `Bearer ${options.token}` : undefined);
  return createClient(
    ClientService,
    createConnectTransport({
      baseUrl: url,
      httpVersion: "1.1",
      useBinaryFormat: true,
      nodeOptions: { ...options.tls, agent: false } as never,
      interceptors: authorization
        ? [(next) => (req) => {
          req.header.set("authorization", authorization);
          return next(req);
        }]
        : [],
    }),
  );
}

/** A fake client's stream. */
export interface FakeClient {
  /** Resolves with the session id once registered; rejects when refused. */
  registered: Promise<string>;
  /** Resolves when the stream ends; rejects with its error. */
  done: Promise<void>;
  stop(): void;
}

/**
 * Polls as `fqdn` and answers every scrape with `body` (and the status 200).
 *
 * @param client The Connect client.
 * @param fqdn The name to register.
 * @param body What to answer.
 * @returns The stream.
 */
export function fakeClient(
  client: Client<typeof ClientService>,
  fqdn: string,
  body = "up 1\n",
): FakeClient {
  const controller = new AbortController();
  const registered = Promise.withResolvers<string>();
  registered.promise.catch(() => {});
  const done = (async () => {
    let sessionId = "";
    try {
      for await (const message of client.poll({ fqdn }, { signal: controller.signal })) {
        const m = message.message;
        if (m.case === "registered") {
          sessionId = m.value.sessionId;
          registered.resolve(sessionId);
        } else if (m.case === "scrape") {
          const id = m.value.id;
          client.push(
            (async function* () {
              yield {
                message: {
                  case: "head" as const,
                  value: { scrapeId: id, sessionId, status: 200, headers: [], error: "" },
                },
              };
              yield {
                message: { case: "bodyChunk" as const, value: new TextEncoder().encode(body) },
              };
            })(),
            { signal: controller.signal },
          ).catch(() => {});
        }
      }
    } catch (error) {
      registered.reject(error);
      if (!controller.signal.aborted) throw error;
    }
    registered.reject(new Error("stream ended before registration"));
  })();
  done.catch(() => {});
  return { registered: registered.promise, done, stop: () => controller.abort() };
}

/** An HTTP answer. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Serial number of the server's certificate (https only). */
  serial?: string;
}

/**
 * Sends one request to the proxy: origin-form, or absolute-form when `target`
 * is an absolute URL (a scrape).
 *
 * @param proxy The proxy.
 * @param target The path or absolute URL.
 * @param options Headers and TLS.
 * @returns The answer.
 */
export function send(
  proxy: { port: number; tls: boolean },
  target: string,
  options: { headers?: Record<string, string>; tls?: ClientTls } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = (proxy.tls ? httpsRequest : httpRequest)({
      host: "127.0.0.1",
      port: proxy.port,
      method: "GET",
      path: target,
      agent: false,
      ...(proxy.tls ? { servername: "localhost", ...options.tls } : {}),
      headers: {
        host: target.startsWith("/") ? "localhost" : new URL(target).host,
        ...options.headers,
      },
    }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => body += chunk);
      response.on("error", reject);
      response.on("end", () => {
        const socket = response.socket as unknown as {
          getPeerCertificate?: () => { serialNumber?: string };
        };
        const serial = socket.getPeerCertificate?.()?.serialNumber;
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body,
          ...(serial ? { serial } : {}),
        });
      });
    });
    request.on("error", reject);
    request.end();
  });
}

/**
 * Reads one counter sample from the proxy's registry.
 *
 * @param proxy The proxy.
 * @param name Metric name.
 * @param labels Label values to match.
 * @returns The value (0 when absent).
 */
export async function counter(
  proxy: Proxy,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const metric = proxy.metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const data = await metric.get();
  const sample = data.values.find((v) =>
    Object.entries(labels).every(([k, value]) => String(v.labels[k]) === value)
  );
  return sample?.value ?? 0;
}
