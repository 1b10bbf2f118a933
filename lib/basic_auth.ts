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
  user: string;
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

/** Why a basic-auth check failed. */
export type BasicAuthFailure = "unknown_user" | "wrong_password" | "busy";

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
  ): Promise<BasicAuthFailure | null>;
}

/** Options for {@linkcode createBasicAuthVerifier}. */
export interface BasicAuthVerifierOptions {
  /** Successful checks remembered. @default {1024} */
  cacheSize?: number;
  /** Checks that may run at once; more fail with "busy". @default {4} */
  maxConcurrent?: number;
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
  const cache = new Map<string, true>();
  let running = 0;

  return {
    async verify(users, credentials) {
      const hash = users.get(credentials.user);
      const key = createHash("sha256")
        .update(`${credentials.user}\0${hash ?? ""}\0${credentials.password}`)
        .digest("hex");
      if (hash !== undefined && cache.has(key)) {
        cache.delete(key);
        cache.set(key, true);
        return null;
      }
      if (running >= maxConcurrent) return "busy";
      running++;
      try {
        // bcrypt reads at most 72 bytes; longer passwords are checked whole
        // by refusing them rather than matching on a prefix.
        const tooLong = new TextEncoder().encode(credentials.password).length > 72;
        const ok = await bcrypt.compare(credentials.password, hash ?? DUMMY_HASH);
        if (hash === undefined) return "unknown_user";
        if (!ok || tooLong) return "wrong_password";
      } finally {
        running--;
      }
      cache.set(key, true);
      if (cache.size > cacheSize) cache.delete(cache.keys().next().value!);
      return null;
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
