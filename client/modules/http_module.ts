/**
 * The `http` method: reverse-proxies a local exporter, verifying 200 bodies
 * while they stream. Built on node:http(s), not fetch: fetch would
 * decompress gzip bodies, and the bytes must reach Prometheus unchanged.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import http from "node:http";
import https from "node:https";
import tls from "node:tls";
import {
  forwardableFields,
  forwardableHeaders,
  type HeaderField,
  rawHeaderPairs,
} from "../../lib/headers.ts";
import { verifyStream } from "../verify/mod.ts";
import type { HttpModuleConfig } from "./config.ts";
import {
  BackendClosedError,
  backendGet,
  type BackendPool,
  type BackendResponse,
  createBackendPool,
} from "./backend_http.ts";
import { errorResponse, type ModuleResponse, prefetch } from "./response.ts";
import { formatScrapeTimeout, SCRAPE_TIMEOUT_HEADER } from "../../lib/scrape_timeout.ts";
import { errorMessage } from "../../lib/error_message.ts";
import type { ReadBufferPool } from "../../lib/read_buffers.ts";

/** TLS material for an https backend, read when the configuration loads. */
export interface BackendTlsMaterial {
  /** Trusted CAs: the system roots plus the configured CA files, or undefined for the defaults. */
  readonly ca: string[] | undefined;
  /** Client certificate (PEM). */
  readonly cert: string | undefined;
  /** Client key (PEM). */
  readonly key: string | undefined;
  /** False with `tls_insecure_skip_verify`. */
  readonly rejectUnauthorized: boolean;
  /** `server_name`. */
  readonly servername: string | undefined;
}

/**
 * Reads the files an https module names. Called on every (re)load so that
 * a missing or unreadable file fails the load, not every scrape.
 *
 * @param module The module.
 * @param readTextFile File access.
 * @returns The material, or undefined for plain http modules.
 * @throws {Error} Naming the module and file when a file cannot be read.
 */
export async function loadBackendTls(
  module: HttpModuleConfig,
  readTextFile: (path: string) => Promise<string> = (path) => Deno.readTextFile(path),
): Promise<BackendTlsMaterial | undefined> {
  if (module.http.scheme !== "https") return undefined;
  const config = module.http.tls;
  const read = async (path: string, key: string) => {
    try {
      return await readTextFile(path);
    } catch (error) {
      throw new Error(
        `${module.source.file}:${module.source.line}: modules.${module.name}.http.${key}: cannot read ${path}: ${
          errorMessage(error)
        }`,
      );
    }
  };
  const extra: string[] = [];
  for (const file of config.trustedCaFiles) {
    const key = file === config.rootCaFile ? "tls_root_ca_file" : "tls_ca_cert_file";
    extra.push(await read(file, key));
  }
  const client = config.clientCertificate;
  return {
    ca: extra.length > 0 ? [...tls.rootCertificates, ...extra] : undefined,
    cert: client ? await read(client.certFile, "tls_cert_file") : undefined,
    key: client ? await read(client.keyFile, "tls_key_file") : undefined,
    rejectUnauthorized: !config.insecureSkipVerify,
    servername: config.serverName,
  };
}

/** One request to an http module. */
export interface HttpModuleRequest {
  /** The module. */
  readonly module: HttpModuleConfig;
  /** TLS material from {@linkcode loadBackendTls}. */
  readonly tls: BackendTlsMaterial | undefined;
  /** The query for the backend (without the first `module`). */
  readonly backendQuery: ReadonlyArray<readonly [string, string]>;
  /** The incoming request's header fields. */
  readonly headers: readonly HeaderField[];
  /** The deadline in milliseconds, if any (sent on as the scrape timeout header). */
  readonly timeoutMs: number | undefined;
  /** Most decoded bytes to verify (`--verify.max-bytes`). */
  readonly verifyMaxBytes: number;
  /** How much of a verified body to read before answering. */
  readonly windowBytes: number;
  /** Largest response header block. */
  readonly maxHeaderBytes: number;
  /** Keep-alive connection pools; without them every request has its own connection. */
  readonly agents?: BackendAgents | undefined;
  /** The scraper's address, added to `X-Forwarded-For` (direct listener only). */
  readonly peer?: string | undefined;
}

/**
 * Keep-alive connection pools to backends: one for plain http, one per set
 * of TLS material (so that a module's client certificate and CAs never serve
 * another module's connection).
 */
export interface BackendAgents {
  /** The pool for an https request. */
  agentFor(material: BackendTlsMaterial | undefined, secure: boolean): http.Agent;
  /** Kept-alive connections to plain-http backends. */
  readonly plain: BackendPool;
  /** Closes every pooled connection. */
  close(): void;
}

/**
 * Creates the pools.
 *
 * @param options How long an idle connection is kept (short: backends close
 *   idle connections too, and a request sent on a connection the backend is
 *   closing is retried once on a new one).
 * @returns The pools.
 */
export function createBackendAgents(options: { idleTimeoutMs?: number } = {}): BackendAgents {
  const settings = { keepAlive: true, timeout: options.idleTimeoutMs ?? 5_000, maxFreeSockets: 4 };
  const plain = new http.Agent(settings);
  const pool = createBackendPool({ idleTimeoutMs: settings.timeout });
  const secure = new WeakMap<BackendTlsMaterial, https.Agent>();
  const all = new Set<http.Agent>([plain]);
  const defaultSecure = new https.Agent(settings);
  all.add(defaultSecure);
  return {
    plain: pool,
    agentFor(material, isSecure) {
      if (!isSecure) return plain;
      if (material === undefined) return defaultSecure;
      let agent = secure.get(material);
      if (agent === undefined) {
        agent = new https.Agent(settings);
        secure.set(material, agent);
        all.add(agent);
      }
      return agent;
    },
    close() {
      pool.close();
      for (const agent of all) agent.destroy();
    },
  };
}

/** Incoming fields never sent to a backend, besides the hop-by-hop ones. */
const DROPPED_HEADERS: ReadonlySet<string> = new Set([
  "authorization", // the front door's credential is not the backend's
  "cookie",
  SCRAPE_TIMEOUT_HEADER, // replaced by the effective timeout
]);

/**
 * Builds the backend URL: the module's scheme, address, port and path, the
 * incoming parameters, then the parameters from the module's `path`.
 *
 * @param module The module.
 * @param backendQuery The incoming parameters without the first `module`.
 * @returns The URL.
 */
export function backendUrl(
  module: HttpModuleConfig,
  backendQuery: ReadonlyArray<readonly [string, string]>,
): URL {
  const url = new URL(module.http.url);
  const query = new URLSearchParams();
  for (const [key, value] of backendQuery) query.append(key, value);
  for (const [key, value] of module.http.query) query.append(key, value);
  url.search = query.toString();
  return url;
}

/** What a module's configuration alone decides of the backend request. */
interface FixedRequestParts {
  /** `headers`, by lower-case name. */
  readonly configured: Readonly<Record<string, readonly string[]>>;
  /** `headers: {host: …}`. */
  readonly host: string | undefined;
  /** The basic auth field's value. */
  readonly authorization: string | undefined;
  /** The backend URL when the request adds no parameters. */
  url?: URL;
}

/** Computed once per module of a loaded configuration (a reload makes new module objects). */
const FIXED_PARTS = new WeakMap<HttpModuleConfig, FixedRequestParts>();

function fixedHeaders(module: HttpModuleConfig): FixedRequestParts {
  let fixed = FIXED_PARTS.get(module);
  if (fixed === undefined) {
    const configured: Record<string, string[]> = {};
    for (const [name, value] of module.http.headers) {
      (configured[name.toLowerCase()] ??= []).push(value);
    }
    const auth = module.http.basicAuth;
    fixed = {
      configured,
      host: module.http.host,
      authorization: auth === undefined
        ? undefined
        : `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString("base64")}`,
    };
    FIXED_PARTS.set(module, fixed);
  }
  return fixed;
}

/** {@linkcode backendUrl}, made once per module when the request adds no parameters. */
function moduleUrl(
  module: HttpModuleConfig,
  backendQuery: ReadonlyArray<readonly [string, string]>,
): URL {
  if (backendQuery.length > 0) return backendUrl(module, backendQuery);
  const fixed = fixedHeaders(module);
  return fixed.url ??= backendUrl(module, backendQuery);
}

/**
 * Builds the backend request's header fields.
 *
 * @param module The module.
 * @param incoming The incoming fields.
 * @param timeoutMs The effective deadline.
 * @param peer The scraper's address, appended to `X-Forwarded-For` as Go's
 *   ReverseProxy (and so exporter_exporter) does.
 * @returns Lower-cased names with their values (several per name allowed).
 */
export function backendHeaders(
  module: HttpModuleConfig,
  incoming: readonly HeaderField[],
  timeoutMs: number | undefined,
  peer?: string,
): Record<string, string[]> {
  const headers: Record<string, string[]> = {};
  // (The fields as they come: no name/value pairs made per request.)
  for (const { name, value } of forwardableFields(incoming)) {
    if (DROPPED_HEADERS.has(name)) continue;
    (headers[name] ??= []).push(value);
  }
  const fixed = fixedHeaders(module);
  Object.assign(headers, fixed.configured);
  if (fixed.host !== undefined) headers["host"] = [fixed.host];
  if (fixed.authorization !== undefined) headers["authorization"] = [fixed.authorization];
  if (peer !== undefined && peer !== "") {
    const before = headers["x-forwarded-for"];
    headers["x-forwarded-for"] = [[...(before ?? []), peer].join(", ")];
  }
  if (timeoutMs !== undefined) {
    headers[SCRAPE_TIMEOUT_HEADER] = [formatScrapeTimeout(timeoutMs)];
  }
  return headers;
}

export { BackendClosedError } from "./backend_http.ts";

/**
 * Sends the request and answers with the backend's response; a 200 body is
 * verified unless `verify: false`. Throws when the backend cannot be
 * reached or the signal aborts before the answer.
 *
 * @param request The module, query, headers and limits.
 * @param signal The request's deadline.
 * @returns The response.
 */
export async function serveHttpModule(
  request: HttpModuleRequest,
  signal: AbortSignal,
): Promise<ModuleResponse> {
  const { module } = request;
  // Shared by the requests of a module: nothing below changes it.
  const url = moduleUrl(module, request.backendQuery);
  let status: number;
  let headers: HeaderField[];
  let source: ReadableStream<Uint8Array>;
  let contentLength: number | undefined;
  let readBuffers: ReadBufferPool | undefined;
  if (url.protocol === "http:") {
    // Plain http on Deno's own sockets: see backend_http.ts for why.
    const response = await backendGet({
      url,
      headers: backendHeaders(module, request.headers, request.timeoutMs, request.peer),
      maxHeaderBytes: request.maxHeaderBytes,
      moduleName: module.name,
      pool: request.agents?.plain,
    }, signal);
    status = response.status;
    headers = forwardableHeaders(response.headers);
    contentLength = response.contentLength;
    if (status !== 200 || !module.http.verify) {
      // Passed on as it is read: no stream in between.
      return {
        status,
        headers,
        error: "",
        body: backendBody(response),
        ...(contentLength !== undefined ? { contentLength } : {}),
        ownedChunks: true,
        readBuffers: response.readBuffers,
      };
    }
    source = response.body;
    readBuffers = response.readBuffers;
  } else {
    const response = await send(url, request, signal);
    headers = forwardableHeaders(rawHeaderPairs(response.rawHeaders));
    status = response.statusCode ?? 502;
    source = asStream(response, module.name);
  }
  if (status !== 200 || !module.http.verify) {
    return {
      status,
      headers,
      error: "",
      body: source,
      ...(contentLength !== undefined ? { contentLength } : {}),
      ...(readBuffers !== undefined ? { ownedChunks: true, readBuffers } : {}),
    };
  }
  const header = (name: string) => headers.find((h) => h.name === name)?.value;
  const verified = verifyStream(source, {
    contentType: header("content-type"),
    contentEncoding: header("content-encoding"),
    maxBytes: request.verifyMaxBytes,
  });
  const body = await prefetch(verified, request.windowBytes);
  return {
    status,
    headers,
    error: "",
    body: body.body,
    ...(contentLength !== undefined ? { contentLength } : {}),
    // The verifiers copy what they keep (a partial line or message), and a
    // chunk is passed on only once it has been checked.
    ...(readBuffers !== undefined ? { ownedChunks: true, readBuffers } : {}),
  };
}

/** A plain-http backend's body as an async iterable over its reads. */
function backendBody(response: BackendResponse): AsyncIterable<Uint8Array> {
  const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };
  let ended = false;
  const iterator: AsyncIterableIterator<Uint8Array> = {
    async next(): Promise<IteratorResult<Uint8Array>> {
      if (ended) return DONE;
      let piece;
      try {
        piece = await response.read();
      } catch (error) {
        ended = true;
        throw error;
      }
      if (piece !== null) return { done: false, value: piece };
      ended = true;
      return DONE;
    },
    // deno-lint-ignore require-await
    async return(): Promise<IteratorResult<Uint8Array>> {
      if (!ended) {
        ended = true;
        response.cancel();
      }
      return DONE;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return iterator;
}

/** Errors of a request sent on a pooled connection the backend had closed. */
const STALE_CONNECTION = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED"]);

async function send(
  url: URL,
  request: HttpModuleRequest,
  signal: AbortSignal,
): Promise<http.IncomingMessage> {
  try {
    return await sendOnce(url, request, signal);
  } catch (error) {
    const stale = (error as { reusedSocket?: boolean }).reusedSocket === true &&
      (STALE_CONNECTION.has((error as { code?: string }).code ?? "") ||
        errorMessage(error) === "socket hang up");
    // As Go's Transport: a GET that failed on a reused connection before any
    // answer is sent again, once, on a new one.
    if (!stale || signal.aborted) throw error;
    return await sendOnce(url, request, signal);
  }
}

function sendOnce(
  url: URL,
  request: HttpModuleRequest,
  signal: AbortSignal,
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    signal.throwIfAborted();
    const secure = url.protocol === "https:";
    const material = request.tls;
    const headers: Record<string, string | string[]> = {};
    for (
      const [name, values] of Object.entries(
        backendHeaders(request.module, request.headers, request.timeoutMs, request.peer),
      )
    ) headers[name] = values.length === 1 ? values[0]! : values;
    const options: https.RequestOptions = {
      method: "GET",
      headers,
      agent: request.agents?.agentFor(material, secure) ?? false,
      signal,
      maxHeaderSize: request.maxHeaderBytes,
      ...(secure && material
        ? {
          ...(material.ca ? { ca: material.ca } : {}),
          ...(material.cert ? { cert: material.cert, key: material.key } : {}),
          rejectUnauthorized: material.rejectUnauthorized,
          ...(material.servername ? { servername: material.servername } : {}),
        }
        : {}),
    };
    const req = (secure ? https : http).request(url, options, resolve);
    req.on("error", (error: Error & { reusedSocket?: boolean }) => {
      error.reusedSocket = req.reusedSocket;
      reject(error);
    });
    req.end();
  });
}

/** The node response as a web stream, naming truncation clearly. */
function asStream(response: http.IncomingMessage, name: string): ReadableStream<Uint8Array> {
  const iterator = (response as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await iterator.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } catch (error) {
        const message = errorMessage(error);
        controller.error(
          message === "aborted"
            ? new BackendClosedError(`module ${name}: the backend closed the connection mid-body`)
            : error,
        );
      }
    },
    async cancel() {
      await iterator.return?.();
      response.destroy();
    },
  }, { highWaterMark: 0 });
}

/**
 * The error answer for a backend that could not be reached.
 *
 * @param module The module.
 * @param error What the request threw.
 * @returns A 502 naming the backend.
 */
export function unreachable(module: HttpModuleConfig, error: unknown): ModuleResponse {
  const reason = errorMessage(error);
  return errorResponse(
    502,
    `module ${module.name}: backend ${module.http.url} did not answer: ${reason}`,
  );
}
