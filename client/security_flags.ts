/**
 * The client's security flags: its credential for the proxy
 * (`--auth.token-file`), what it may fetch (`--allow-port`, `--allow-path`,
 * `--use-localhost`), the token it sends to targets (`--token-path`), and TLS
 * for targets, kept apart from TLS for the proxy (`--tls.*`).
 *
 * @module
 */

import { FlagError, type FlagSpec, type FlagValues } from "../lib/flags.ts";
import type { ScrapePolicy } from "./scrape/scraper.ts";
import type { TargetTlsOptions } from "./scrape/scrape_transport.ts";
import { errorMessage } from "../lib/error_message.ts";

/** The flags, for the client's flag table. */
export const SECURITY_FLAGS = [
  {
    name: "auth.token-file",
    type: "string",
    default: "",
    help:
      "File holding this client's token for the proxy, sent as a bearer token; re-read on every call.",
  },
  {
    name: "allow-port",
    type: "string",
    repeatable: true,
    help:
      'A port the proxy may have scraped (a URL without a port means 80 or 443); "*" or none: any.',
  },
  {
    name: "allow-path",
    type: "string",
    repeatable: true,
    help: 'A path the proxy may have scraped; a trailing "*" makes it a prefix. None: any.',
  },
  {
    name: "use-localhost",
    type: "boolean",
    default: "false",
    help: "Scrape 127.0.0.1 instead of the fqdn (Host keeps the fqdn); needs --allow-port.",
  },
  {
    name: "token-path",
    type: "string",
    default: "",
    help:
      "Bearer token file sent to targets (re-read on every scrape); only over https or to 127.0.0.1.",
  },
  {
    name: "target.tls.ca",
    type: "string",
    default: "",
    help: "CA certificate file to verify https targets against (not the proxy: see --tls.cacert).",
  },
  {
    name: "target.tls.cert",
    type: "string",
    default: "",
    help: "Client certificate file presented to https targets.",
  },
  {
    name: "target.tls.key",
    type: "string",
    default: "",
    help: "Private key file for --target.tls.cert.",
  },
  {
    name: "target.insecure-skip-verify",
    type: "boolean",
    default: "false",
    help: "Do not verify https targets' certificates (never affects the connection to the proxy).",
  },
] as const satisfies readonly FlagSpec[];

/**
 * What {@linkcode readSecuritySettings} reads: the security flags, and
 * `--proxy-url` from the client's table when there.
 */
export type SecurityFlagValues = FlagValues<typeof SECURITY_FLAGS> & {
  readonly "proxy-url"?: readonly string[];
};

/** What the flags say. */
export interface SecuritySettings {
  scrapePolicy: ScrapePolicy;
  /** Reads the target token; null without --token-path. */
  readTargetToken: (() => Promise<string>) | null;
  targetTls: TargetTlsOptions;
  /** The Authorization header for the proxy, read per call; null without --auth.token-file. */
  proxyAuthorization: (() => string) | null;
}

/** Tokens shorter than this are refused: the proxy stores them as SHA-256. */
export const MIN_TOKEN_LENGTH = 16;

/**
 * Reads and checks a token file.
 *
 * @param path The file.
 * @param flag The flag, for messages.
 * @returns The token, trimmed.
 * @throws {FlagError} When it cannot be read, is empty, or is too short.
 */
export function readTokenFile(path: string, flag: string): string {
  let token: string;
  try {
    token = Deno.readTextFileSync(path).trim();
  } catch (error) {
    throw new FlagError(`--${flag}: cannot read ${path}: ${errorMessage(error)}`);
  }
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new FlagError(
      `--${flag}: the token in ${path} must be at least ${MIN_TOKEN_LENGTH} characters without spaces, e.g. from openssl rand -hex 32`,
    );
  }
  return token;
}

function readPem(path: string, flag: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    throw new FlagError(`--${flag}: cannot read ${path}: ${errorMessage(error)}`);
  }
}

/**
 * Turns the flags into settings, checking them.
 *
 * @param flags Parsed flags.
 * @returns The settings.
 * @throws {FlagError} Naming the flag that is wrong.
 */
export function readSecuritySettings(flags: SecurityFlagValues): SecuritySettings {
  const portTexts = flags["allow-port"];
  let allowPorts: number[] | null = null;
  if (portTexts.length > 0 && !portTexts.includes("*")) {
    allowPorts = portTexts.map((text) => {
      const port = Number(text);
      if (!/^\d{1,5}$/.test(text) || port < 1 || port > 65535) {
        throw new FlagError(`--allow-port: "${text}" is not a port number or "*"`);
      }
      return port;
    });
  }
  const pathTexts = flags["allow-path"];
  for (const path of pathTexts) {
    if (!path.startsWith("/")) throw new FlagError(`--allow-path: "${path}" must start with /`);
  }
  const useLocalhost = flags["use-localhost"];
  if (useLocalhost && allowPorts === null) {
    throw new FlagError(
      "--use-localhost needs --allow-port: a client scraping 127.0.0.1 must restrict the ports",
    );
  }

  const tokenPath = flags["token-path"];
  const readTargetToken = tokenPath === "" ? null : async () => await Deno.readTextFile(tokenPath);

  const ca = flags["target.tls.ca"];
  const cert = flags["target.tls.cert"];
  const key = flags["target.tls.key"];
  if ((cert === "") !== (key === "")) {
    throw new FlagError("--target.tls.cert and --target.tls.key go together");
  }
  const targetTls: TargetTlsOptions = {
    ...(ca ? { ca: readPem(ca, "target.tls.ca") } : {}),
    ...(cert
      ? { cert: readPem(cert, "target.tls.cert"), key: readPem(key, "target.tls.key") }
      : {}),
    insecureSkipVerify: flags["target.insecure-skip-verify"],
  };

  const tokenFile = flags["auth.token-file"];
  let proxyAuthorization: (() => string) | null = null;
  if (tokenFile !== "") {
    const proxyUrls = flags["proxy-url"] ?? [];
    if (proxyUrls.some((url) => /^[a-z]+:\/\/[^/]*@/i.test(url))) {
      throw new FlagError(
        "--auth.token-file and user:password in --proxy-url both set Authorization; use one",
      );
    }
    let token = readTokenFile(tokenFile, "auth.token-file");
    proxyAuthorization = () => {
      // Re-read on every call, so that a rotated token is used at once; a
      // file that became unreadable keeps the last good token.
      try {
        token = readTokenFile(tokenFile, "auth.token-file");
      } catch { /* keep the last one */ }
      return `Bearer ${token}`;
    };
  }
  return {
    scrapePolicy: { allowPorts, allowPaths: pathTexts.length > 0 ? pathTexts : null, useLocalhost },
    readTargetToken,
    targetTls,
    proxyAuthorization,
  };
}
