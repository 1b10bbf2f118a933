/**
 * Loads the proxy's security configuration from `--web.config.file` and
 * `--auth.config.file`, says loudly what is left open, and re-reads the files
 * when they change (new tokens and users without a restart; TLS files are
 * watched by the TLS listener itself).
 *
 * @module
 */

import { createBasicAuthVerifier } from "../../lib/basic_auth.ts";
import { createBcryptPool } from "../../lib/bcrypt_pool.ts";
import type { Logger } from "../../lib/logger.ts";
import { createTlsListener, type TlsListener } from "../../lib/tls_server.ts";
import { loadWebConfig, type WebConfig } from "../../lib/web_config.ts";
import {
  type AuthConfig,
  type Authenticator,
  createAuthenticator,
  defaultAuthConfig,
  loadAuthConfig,
} from "./auth.ts";
import { errorMessage } from "../../lib/error_message.ts";

/** Options for {@linkcode loadSecurity}. */
export interface SecurityOptions {
  /** `--web.config.file`; "" for none. */
  webConfigFile: string;
  /** `--auth.config.file`; "" for none. */
  authConfigFile: string;
  logger: Logger;
  /** How often files are checked for changes. @default {5000} */
  reloadIntervalMs?: number;
  /** Failed password checks per source and window (see AuthenticatorOptions). @default {no limit} */
  maxFailuresPerSource?: number;
  /** @default {60000} */
  failureWindowMs?: number;
  /**
   * Worker threads for bcrypt checks, so that they never hold up the main
   * thread; 0 runs them in the main thread. Stopped when `watch`'s signal
   * aborts. @default {2}
   */
  bcryptWorkers?: number;
}

/** The loaded configuration. */
export interface Security {
  web: WebConfig;
  /** Null: plain HTTP. */
  tls: TlsListener | null;
  auth: Authenticator;
  /** Start-up warnings about what is left open. */
  warnings(): string[];
  /** Re-reads the config files when they change, until `signal` aborts. */
  watch(signal: AbortSignal): void;
}

const EMPTY_WEB: WebConfig = { tls: null, headers: {}, basicAuthUsers: new Map() };

async function stamp(path: string): Promise<string> {
  if (path === "") return "";
  try {
    const info = await Deno.stat(path);
    return `${info.mtime?.getTime() ?? 0}:${info.size}`;
  } catch {
    return "missing";
  }
}

async function loadAuth(path: string, web: WebConfig): Promise<AuthConfig> {
  return path === ""
    ? defaultAuthConfig(web.basicAuthUsers)
    : await loadAuthConfig(path, web.basicAuthUsers);
}

/**
 * Loads both files.
 *
 * @param options File names, logger and reload interval.
 * @returns The configuration.
 * @throws {ConfigError} When a file is invalid.
 * @throws {Error} When a TLS file cannot be read or used.
 */
export async function loadSecurity(options: SecurityOptions): Promise<Security> {
  const { logger } = options;
  const interval = options.reloadIntervalMs ?? 5_000;
  const web = options.webConfigFile === "" ? EMPTY_WEB : await loadWebConfig(options.webConfigFile);
  const authConfig = await loadAuth(options.authConfigFile, web);
  const workers = options.bcryptWorkers ?? 2;
  const pool = workers > 0 ? createBcryptPool({ size: workers }) : null;
  const auth = createAuthenticator(authConfig, {
    users: web.basicAuthUsers,
    ...(pool === null ? {} : { verifier: createBasicAuthVerifier({ compare: pool.compare }) }),
    maxFailuresPerSource: options.maxFailuresPerSource ?? 0,
    failureWindowMs: options.failureWindowMs ?? 60_000,
  });
  const tls = web.tls === null
    ? null
    : await createTlsListener(web.tls, { logger, reloadIntervalMs: interval });

  return {
    web,
    tls,
    auth,
    warnings() {
      const warnings: string[] = [];
      const open = auth.openRoles();
      if (open.length > 0) {
        const what: Record<string, string> = {
          client:
            "anyone who reaches the proxy can register any fqdn, receive the scrapes meant for it (with the Authorization headers Prometheus sends) and answer them",
          scraper: "anyone who reaches the proxy can scrape every client's targets through it",
          reader:
            "anyone who reaches the proxy can list the clients (/clients, ListClients) and read /metrics",
        };
        for (const role of open) {
          warnings.push(`Authentication is OFF for ${role}s: ${what[role]}`);
        }
      }
      if (options.authConfigFile === "" && web.basicAuthUsers.size > 0) {
        warnings.push(
          "Clients authenticated with basic_auth_users may register any fqdn; bind clients to their fqdns with --auth.config.file",
        );
      }
      if (tls === null) {
        warnings.push(
          "Serving plain HTTP: credentials, scrape requests and answers cross the network unencrypted; set tls_server_config in --web.config.file",
        );
      }
      return warnings;
    },
    watch(signal) {
      if (pool !== null) {
        if (signal.aborted) pool.close();
        else signal.addEventListener("abort", () => pool.close(), { once: true });
      }
      if (signal.aborted) return;
      let stamps: Promise<[string, string]> = Promise.all([
        stamp(options.webConfigFile),
        stamp(options.authConfigFile),
      ]);
      let running = false;
      const timer = setInterval(async () => {
        if (running) return;
        running = true;
        try {
          const before = await stamps;
          const now: [string, string] = [
            await stamp(options.webConfigFile),
            await stamp(options.authConfigFile),
          ];
          if (now[0] === before[0] && now[1] === before[1]) return;
          stamps = Promise.resolve(now);
          try {
            const newWeb = options.webConfigFile === ""
              ? EMPTY_WEB
              : await loadWebConfig(options.webConfigFile);
            const newAuth = await loadAuth(options.authConfigFile, newWeb);
            auth.update(newAuth, newWeb.basicAuthUsers);
            logger.info("Reloaded the auth configuration", {
              web_config: options.webConfigFile || undefined,
              auth_config: options.authConfigFile || undefined,
            });
            if (JSON.stringify(newWeb.tls) !== JSON.stringify(web.tls)) {
              logger.warn(
                "tls_server_config changed: certificate files are reloaded, other TLS settings need a restart",
              );
            }
          } catch (error) {
            logger.error("Cannot reload the auth configuration; keeping the previous one", {
              err: errorMessage(error),
            });
          }
        } finally {
          running = false;
        }
      }, interval);
      signal.addEventListener("abort", () => clearInterval(timer), { once: true });
    },
  };
}
