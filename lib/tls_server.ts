/**
 * TLS for a listener from a web configuration's `tls_server_config`: the
 * node:tls server options, the client-certificate rules that node:tls cannot
 * express (exporter-toolkit's `client_auth_type` values and
 * `client_allowed_sans`), the verified identity of a peer, and re-reading the
 * certificate, key and CA when they change on disk, so that they can be
 * rotated without a restart.
 *
 * @module
 */

import { type AddressInfo, isIP, type Socket } from "node:net";
import type { SecureContextOptions, Server as TlsServer, TlsOptions, TLSSocket } from "node:tls";
import type { Logger } from "./logger.ts";
import type { TlsServerConfig } from "./web_config.ts";
import { errorMessage } from "./error_message.ts";

/** What a verified client certificate says about its holder. */
export interface PeerIdentity {
  /** Subject common name; "" when absent. */
  commonName: string;
  /** DNS names from the subjectAltName extension, lower case. */
  dnsNames: string[];
  /** IP addresses from the subjectAltName extension, canonical form. */
  ipAddresses: string[];
  /** Other SANs (email, URI), as written. */
  otherNames: string[];
  /** Subject and issuer as "CN=…,O=…" strings; together they name the credential. */
  subject: string;
  /** The issuer, as the subject. */
  issuer: string;
}

/** TLS for one listener. */
export interface TlsListener {
  /** Options for `https.createServer` or `tls.createServer`. */
  readonly serverOptions: TlsOptions;
  /**
   * Says why a freshly handshaken connection must be closed, or null to keep
   * it. Call it from the server's "secureConnection" event.
   */
  admit(socket: TLSSocket): string | null;
  /**
   * Re-reads the certificate, key and CA every `intervalMs` when one of them
   * changed, and installs them for new connections. Stops when `signal` aborts.
   */
  watch(server: TlsServer, signal: AbortSignal): void;
  /** Checks the files once now; resolves true when new ones were installed. */
  reload(server: TlsServer): Promise<boolean>;
}

/** Options for {@linkcode createTlsListener}. */
export interface TlsListenerOptions {
  /** Logs reloads and failed reloads. */
  logger?: Logger;
  /** How often files are checked for changes. @default {5000} */
  reloadIntervalMs?: number;
}

interface Loaded {
  context: SecureContextOptions;
  stamp: string;
}

async function stampOf(paths: readonly string[]): Promise<string> {
  const parts = await Promise.all(paths.map(async (path) => {
    const info = await Deno.stat(path);
    return `${path}:${info.mtime?.getTime() ?? 0}:${info.size}`;
  }));
  return parts.join("|");
}

async function load(config: TlsServerConfig): Promise<Loaded> {
  const paths = [config.certFile, config.keyFile];
  if (config.clientCaFile !== null) paths.push(config.clientCaFile);
  const stamp = await stampOf(paths);
  const read = async (path: string, what: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (error) {
      throw new Error(`Cannot read TLS ${what} ${path}: ${errorMessage(error)}`);
    }
  };
  const context: SecureContextOptions = {
    cert: await read(config.certFile, "certificate"),
    key: await read(config.keyFile, "key"),
  };
  if (config.clientCaFile !== null) context.ca = await read(config.clientCaFile, "client CA");
  // Fails here, with the reason, rather than at the first handshake.
  const { createSecureContext } = await import("node:tls");
  try {
    createSecureContext(context);
  } catch (error) {
    throw new Error(
      `Cannot use TLS certificate ${config.certFile} with key ${config.keyFile}: ${
        errorMessage(error)
      }`,
    );
  }
  return { context, stamp };
}

/**
 * Loads the files and builds the listener's TLS settings.
 *
 * @param config The web configuration's `tls_server_config`.
 * @param options Logger and reload interval.
 * @returns The TLS settings.
 * @throws {Error} When a file cannot be read or the key does not fit the certificate.
 */
export async function createTlsListener(
  config: TlsServerConfig,
  options: TlsListenerOptions = {},
): Promise<TlsListener> {
  let current = await load(config);
  const type = config.clientAuthType;
  const requestCert = type !== "NoClientCert";
  const verify = type === "VerifyClientCertIfGiven" || type === "RequireAndVerifyClientCert";
  const serverOptions: TlsOptions = {
    ...current.context,
    requestCert,
    rejectUnauthorized: type === "RequireAndVerifyClientCert",
    minVersion: config.minVersion,
    maxVersion: config.maxVersion,
  };
  const allowedSans = new Set(config.clientAllowedSans.map((s) => s.toLowerCase()));

  async function reload(server: TlsServer): Promise<boolean> {
    let stamp: string;
    try {
      const paths = [config.certFile, config.keyFile];
      if (config.clientCaFile !== null) paths.push(config.clientCaFile);
      stamp = await stampOf(paths);
    } catch (error) {
      options.logger?.error("Cannot check TLS files; keeping the loaded ones", {
        err: errorMessage(error),
      });
      return false;
    }
    if (stamp === current.stamp) return false;
    try {
      current = await load(config);
    } catch (error) {
      // A half-written pair (new cert, old key) fails here; the next check retries.
      options.logger?.error("Cannot reload TLS files; keeping the loaded ones", {
        err: errorMessage(error),
      });
      return false;
    }
    server.setSecureContext(current.context);
    options.logger?.info("Reloaded TLS certificate", { cert_file: config.certFile });
    return true;
  }

  return {
    serverOptions,
    admit(socket) {
      if (!requestCert) return null;
      const cert = socket.getPeerCertificate();
      const present = cert !== null && typeof cert === "object" && cert.subject !== undefined;
      if (!present) {
        return type === "RequireAnyClientCert" || type === "RequireAndVerifyClientCert"
          ? "no client certificate"
          : null;
      }
      if (verify && !socket.authorized) {
        return `client certificate not verified: ${socket.authorizationError ?? "unknown"}`;
      }
      if (allowedSans.size > 0) {
        const peer = peerIdentity(socket);
        const names = peer === null
          ? []
          : [...peer.dnsNames, ...peer.ipAddresses, ...peer.otherNames.map((n) => n.toLowerCase())];
        if (!names.some((name) => allowedSans.has(name))) {
          return "client certificate has none of client_allowed_sans";
        }
      }
      return null;
    },
    watch(server, signal) {
      if (signal.aborted) return;
      let running = false;
      const timer = setInterval(() => {
        if (running) return;
        running = true;
        reload(server).finally(() => running = false);
      }, options.reloadIntervalMs ?? 5_000);
      signal.addEventListener("abort", () => clearInterval(timer), { once: true });
    },
    reload,
  };
}

/**
 * The identity of a peer whose client certificate the TLS layer verified.
 *
 * @param socket The connection.
 * @returns The identity, or null without a verified certificate.
 */
export function peerIdentity(socket: unknown): PeerIdentity | null {
  const tlsSocket = socket as Partial<TLSSocket> | null;
  if (
    tlsSocket === null || typeof tlsSocket !== "object" || tlsSocket.authorized !== true ||
    typeof tlsSocket.getPeerCertificate !== "function"
  ) {
    return null;
  }
  const cert = tlsSocket.getPeerCertificate();
  if (cert === null || typeof cert !== "object" || cert.subject === undefined) return null;
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  const otherNames: string[] = [];
  for (const entry of splitSans(cert.subjectaltname ?? "")) {
    const colon = entry.indexOf(":");
    const kind = entry.slice(0, colon);
    const value = entry.slice(colon + 1);
    if (kind === "DNS") dnsNames.push(value.toLowerCase());
    else if (kind === "IP Address") ipAddresses.push(canonicalIp(value));
    else otherNames.push(value);
  }
  return {
    commonName: firstValue(cert.subject.CN),
    dnsNames,
    ipAddresses,
    otherNames,
    subject: distinguishedName(cert.subject),
    issuer: distinguishedName(cert.issuer ?? {}),
  };
}

function firstValue(value: string | string[] | undefined): string {
  if (value === undefined) return "";
  return Array.isArray(value) ? value[0] ?? "" : value;
}

function distinguishedName(fields: object): string {
  return Object.entries(fields as Record<string, string | string[] | undefined>)
    .map(([key, value]) => `${key}=${Array.isArray(value) ? value.join("+") : value}`)
    .join(",");
}

/** Splits "DNS:a, IP Address:1.2.3.4" (values may be quoted when they contain commas). */
function splitSans(text: string): string[] {
  const out: string[] = [];
  let current = "";
  let quoted = false;
  for (const char of text) {
    if (char === '"') quoted = !quoted;
    else if (char === "," && !quoted) {
      out.push(current.trim());
      current = "";
      continue;
    } else current += char;
  }
  if (current.trim() !== "") out.push(current.trim());
  return out;
}

/**
 * Canonical text of an IP address, so that "::1" and "0:0:0:0:0:0:0:1" compare equal.
 *
 * @param text An IPv4 or IPv6 address (brackets allowed).
 * @returns The canonical form, or the lower-cased input when it is not an IP.
 */
export function canonicalIp(text: string): string {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  if (isIP(bare) === 6) {
    try {
      return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
    } catch {
      return bare.toLowerCase();
    }
  }
  return bare.toLowerCase();
}

/** Go's answer to plain HTTP on a TLS port (net/http), kept verbatim. */
export const PLAIN_HTTP_ANSWER =
  "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/** A server that {@linkcode listenTlsFront} can put a front door before. */
export interface TlsFrontServer {
  /** Starts listening, as node:net's `Server.listen`. */
  listen(port: number, hostname: string, callback: () => void): unknown;
  /** Where it listens. */
  address(): unknown;
  /** Adds a one-time error listener. */
  once(event: "error", listener: (error: Error) => void): unknown;
  /** Removes an error listener. */
  off(event: "error", listener: (error: Error) => void): unknown;
  /** Adds a listener before the others (for "connection"). */
  prependListener(event: string, listener: (socket: Socket) => void): unknown;
}

/** Options for {@linkcode listenTlsFront}. */
export interface TlsFrontOptions {
  /** Where to listen; "" for all addresses. */
  hostname: string;
  /** Port; 0 picks one. */
  port: number;
  /** A connection that sends nothing for this long is closed. @default {10000} */
  firstByteTimeoutMs?: number;
  /** Logs plain-HTTP attempts (debug). */
  logger?: Logger;
  /** Called for every plain-HTTP request answered 400 (for metrics). */
  onPlainHttp?: () => void;
}

/** The listening front door. */
export interface TlsFront {
  /** Where it listens. */
  readonly address: { hostname: string; port: number };
  /** Stops listening and closes its connections. Idempotent. */
  close(): void;
}

const PEER_FIELDS = ["remoteAddress", "remotePort", "remoteFamily"] as const;

/**
 * Listens for a TLS server behind a front door that looks at the first byte
 * of each connection: a TLS handshake (0x16) is passed on to `server`, which
 * listens on a loopback port of its own; anything else is answered with Go's
 * readable 400 ("Client sent an HTTP request to an HTTPS server.") instead of
 * a TLS alert. node:tls in Deno cannot be handed bytes already read, hence
 * the loopback hop; the connections `server` sees carry the real peer's
 * `remoteAddress`, `remotePort` and `remoteFamily`, so logs, `--allow.net`
 * and the rest see the scraper, not 127.0.0.1.
 *
 * @param server The TLS (https, http2 secure) server, not yet listening.
 * @param options Address, first-byte timeout, logger.
 * @returns The front door; `close` it with the server.
 * @throws {Error} When the address cannot be listened on.
 */
export async function listenTlsFront(
  server: TlsFrontServer,
  options: TlsFrontOptions,
): Promise<TlsFront> {
  const peers = new Map<number, Pick<Socket, typeof PEER_FIELDS[number]>>();
  const adopt = (socket: Socket) => {
    const parent = (socket as Socket & { _parent?: Socket })._parent;
    const peer = peers.get(socket.remotePort ?? -1) ?? peers.get(parent?.remotePort ?? -1);
    if (peer === undefined) return;
    for (const field of PEER_FIELDS) {
      Object.defineProperty(socket, field, { value: peer[field], configurable: true });
    }
  };
  server.prependListener("connection", adopt);
  server.prependListener("secureConnection", adopt);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const inner = (server.address() as AddressInfo).port;
  const { createServer, connect } = await import("node:net");
  const open = new Set<Socket>();
  const timeoutMs = options.firstByteTimeoutMs ?? 10_000;
  const front = createServer((socket: Socket) => {
    open.add(socket);
    socket.on("error", () => {});
    socket.once("close", () => open.delete(socket));
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.once("close", () => clearTimeout(timer));
    socket.once("data", (chunk: Uint8Array) => {
      clearTimeout(timer);
      socket.pause();
      if (chunk[0] !== 0x16) {
        options.logger?.debug("Plain HTTP on a TLS port answered 400", {
          peer: socket.remoteAddress,
        });
        options.onPlainHttp?.();
        socket.end(PLAIN_HTTP_ANSWER);
        return;
      }
      const upstream = connect(inner, "127.0.0.1");
      upstream.on("error", () => socket.destroy());
      upstream.once("connect", () => {
        const key = upstream.localPort ?? -1;
        peers.set(key, {
          remoteAddress: socket.remoteAddress,
          remotePort: socket.remotePort,
          remoteFamily: socket.remoteFamily,
        });
        upstream.once("close", () => peers.delete(key));
        upstream.write(chunk);
        socket.pipe(upstream);
        upstream.pipe(socket);
        socket.resume();
      });
      upstream.once("close", () => socket.destroy());
      socket.once("close", () => upstream.destroy());
    });
  });
  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(options.port, options.hostname || undefined, () => {
      front.off("error", reject);
      resolve();
    });
  });
  const info = front.address() as AddressInfo;
  let closed = false;
  return {
    address: { hostname: info.address, port: info.port },
    close() {
      if (closed) return;
      closed = true;
      front.close();
      for (const socket of open) socket.destroy();
    },
  };
}
