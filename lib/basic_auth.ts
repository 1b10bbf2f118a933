/**
 * HTTP basic authentication against exporter-toolkit's `basic_auth_users`
 * (bcrypt hashes). bcrypt is deliberately slow (about 0.1 s per check at cost
 * 10 in JavaScript), so successful checks are cached, keyed by a SHA-256 of
 * user, hash and password (a changed hash or password misses the cache), and
 * at most a few checks run at once: a flood of wrong passwords cannot starve
 * the process.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import bcrypt from "bcryptjs";

/** Credentials from an `Authorization` or `Proxy-Authorization` header. */
export interface BasicCredentials {
  /** The user name, before the first colon. */
  user: string;
  /** The password, after it. */
  password: string;
}

/**
 * Reads basic credentials from a header value.
 *
 * @param header The header value, e.g. "Basic dXNlcjpwYXNz".
 * @returns The credentials, or null when the header is absent or not basic auth.
 */
export function parseBasicAuth(header: string | undefined | null): BasicCredentials | null {
  if (!header) return null;
  const match = /^Basic[ ]+([A-Za-z0-9+/=]+)[ ]*$/i.exec(header);
  if (!match) return null;
  let decoded: string;
  try {
    const binary = atob(match[1]!);
    decoded = new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(binary, (c) => c.charCodeAt(0)),
    );
  } catch {
    return null;
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Reads a bearer token from an `Authorization` header value.
 *
 * @param header The header value, e.g. "Bearer abc".
 * @returns The token, or null.
 */
export function parseBearer(header: string | undefined | null): string | null {
  if (!header) return null;
  const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header);
  return match ? match[1]! : null;
}

/**
 * Why a basic-auth check failed: "busy" when too many checks run at once,
 * "source_busy" when too many run for the caller's source.
 */
export type BasicAuthFailure = "unknown_user" | "wrong_password" | "busy" | "source_busy";

/** Options of {@linkcode BasicAuthVerifier.verify}. */
export interface VerifyOptions {
  /** The caller's source key; its checks share a per-source concurrency limit. */
  source?: string;
}

/** Checks passwords against bcrypt hashes. */
export interface BasicAuthVerifier {
  /**
   * Checks credentials.
   *
   * @returns null when they are valid, otherwise why not.
   */
  verify(
    users: ReadonlyMap<string, string>,
    credentials: BasicCredentials,
    options?: VerifyOptions,
  ): Promise<BasicAuthFailure | null>;
  /** Whether these credentials passed a check that is still cached (no bcrypt needed). */
  isCached(users: ReadonlyMap<string, string>, credentials: BasicCredentials): boolean;
}

/** Options for {@linkcode createBasicAuthVerifier}. */
export interface BasicAuthVerifierOptions {
  /** Successful checks remembered. @default {1024} */
  cacheSize?: number;
  /** Checks that may run at once; more fail with "busy". @default {4} */
  maxConcurrent?: number;
  /**
   * Checks that may run at once for one source; more fail with
   * "source_busy", so that one source cannot take every place.
   * @default {half of maxConcurrent, at least 1}
   */
  maxConcurrentPerSource?: number;
  /**
   * Compares a password with a bcrypt hash, e.g. on worker threads (see
   * bcrypt_pool.ts). @default {bcryptjs in the main thread}
   */
  compare?: (password: string, hash: string) => Promise<boolean>;
}

/** Compared against when the user is unknown, so both cases cost the same. */
const DUMMY_HASH = "$2b$10$iB9lkh/CKuLb7sNwIS0.gOCCQi/kEdcs9jxo35Bvc/B0GJd4HR0EO";

/**
 * Creates a verifier with its cache.
 *
 * @param options Cache size and concurrency.
 * @returns The verifier.
 */
export function createBasicAuthVerifier(
  options: BasicAuthVerifierOptions = {},
): BasicAuthVerifier {
  const cacheSize = options.cacheSize ?? 1024;
  const maxConcurrent = options.maxConcurrent ?? 4;
  const maxPerSource = options.maxConcurrentPerSource ?? Math.max(1, Math.floor(maxConcurrent / 2));
  const compare = options.compare ??
    ((password: string, hash: string) => bcrypt.compare(password, hash));
  const cache = new Map<string, true>();
  /** Checks running, by key: the same credentials checked at once share one bcrypt run. */
  const running = new Map<string, Promise<BasicAuthFailure | null>>();
  const bySource = new Map<string, number>();

  function keyOf(hash: string | undefined, credentials: BasicCredentials): string {
    return createHash("sha256")
      .update(`${credentials.user}\0${hash ?? ""}\0${credentials.password}`)
      .digest("hex");
  }

  async function check(
    key: string,
    hash: string | undefined,
    credentials: BasicCredentials,
  ): Promise<BasicAuthFailure | null> {
    // bcrypt reads at most 72 bytes; longer passwords are checked whole
    // by refusing them rather than matching on a prefix.
    const tooLong = new TextEncoder().encode(credentials.password).length > 72;
    const ok = await compare(credentials.password, hash ?? DUMMY_HASH);
    if (hash === undefined) return "unknown_user";
    if (!ok || tooLong) return "wrong_password";
    cache.set(key, true);
    if (cache.size > cacheSize) cache.delete(cache.keys().next().value!);
    return null;
  }

  return {
    isCached(users, credentials) {
      const hash = users.get(credentials.user);
      return hash !== undefined && cache.has(keyOf(hash, credentials));
    },
    async verify(users, credentials, verifyOptions = {}) {
      const hash = users.get(credentials.user);
      const key = keyOf(hash, credentials);
      // Cache hits never wait for, nor count against, running checks.
      if (hash !== undefined && cache.has(key)) {
        cache.delete(key);
        cache.set(key, true);
        return null;
      }
      const same = running.get(key);
      if (same !== undefined) return await same;
      if (running.size >= maxConcurrent) return "busy";
      const source = verifyOptions.source ?? "";
      const ofSource = bySource.get(source) ?? 0;
      if (source !== "" && ofSource >= maxPerSource) return "source_busy";
      bySource.set(source, ofSource + 1);
      const result = check(key, hash, credentials);
      running.set(key, result);
      try {
        return await result;
      } finally {
        running.delete(key);
        const left = (bySource.get(source) ?? 1) - 1;
        if (left <= 0) bySource.delete(source);
        else bySource.set(source, left);
      }
    },
  };
}

/**
 * SHA-256 of a secret as lower-case hex, the form client tokens are stored in.
 *
 * @param secret The token.
 * @returns The hash.
 */
export function sha256Hex(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/**
 * Compares two strings in time independent of where they differ.
 *
 * @param a One string.
 * @param b The other.
 * @returns Whether they are equal.
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  if (x.length !== y.length) return false;
  return timingSafeEqual(x, y);
}
