/**
 * Token buckets keyed by source address, for per-source budgets
 * (registrations per second, failed password checks). Pure: the clock is
 * injected and nothing runs in the background; the number of keys is
 * bounded, so that a peer with many addresses cannot grow it without end.
 *
 * @module
 */

/** Options for {@linkcode createTokenBuckets}. */
export interface TokenBucketsOptions {
  /** Tokens added per second to each bucket. */
  ratePerSecond: number;
  /** Capacity of a bucket (and its content when first seen). */
  burst: number;
  /** Most buckets kept; the least recently used go first. @default {10000} */
  maxKeys?: number;
  /** @default {Date.now} */
  now?: () => number;
}

/** Buckets by key. */
export interface TokenBuckets {
  /**
   * Takes one token from `key`'s bucket.
   *
   * @returns 0 when a token was taken, otherwise the milliseconds until one is there.
   */
  take(key: string): number;
  /** Like {@linkcode take} without taking: 0 when a token is there. */
  peek(key: string): number;
  /** Gives a token back (up to the capacity), e.g. after a check that succeeded. */
  refund(key: string): void;
  /** Buckets held now. */
  readonly size: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Creates an empty set of buckets; a key seen for the first time gets a
 * full one.
 *
 * @param options Rate, burst, key bound and clock.
 * @returns The buckets.
 */
export function createTokenBuckets(options: TokenBucketsOptions): TokenBuckets {
  const now = options.now ?? Date.now;
  const maxKeys = options.maxKeys ?? 10_000;
  const perMs = options.ratePerSecond / 1000;
  const buckets = new Map<string, Bucket>();

  function current(key: string): Bucket {
    const at = now();
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: options.burst, at };
      if (buckets.size >= maxKeys) {
        // Full buckets carry no state; otherwise the least recently used go.
        for (const [k, b] of buckets) {
          if (b.tokens + (at - b.at) * perMs >= options.burst) buckets.delete(k);
        }
        while (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value!);
      }
    } else {
      buckets.delete(key); // re-inserted below: most recently used last
      bucket.tokens = Math.min(options.burst, bucket.tokens + (at - bucket.at) * perMs);
      bucket.at = at;
    }
    buckets.set(key, bucket);
    return bucket;
  }

  function wait(bucket: Bucket): number {
    if (bucket.tokens >= 1) return 0;
    return perMs > 0 ? Math.max(1, Math.ceil((1 - bucket.tokens) / perMs)) : Infinity;
  }

  return {
    take(key) {
      const bucket = current(key);
      const ms = wait(bucket);
      if (ms === 0) bucket.tokens -= 1;
      return ms;
    },
    peek(key) {
      return wait(current(key));
    },
    refund(key) {
      const bucket = current(key);
      bucket.tokens = Math.min(options.burst, bucket.tokens + 1);
    },
    get size() {
      return buckets.size;
    },
  };
}

/**
 * The key a peer's budgets are kept under: its IPv4 address, or the /64 of
 * its IPv6 address (one host usually has a whole /64). IPv4-mapped IPv6
 * addresses count as IPv4.
 *
 * @param address The remote address, e.g. from `socket.remoteAddress`.
 * @returns The key; "unknown" when there is no address.
 */
export function sourceKey(address: string | undefined | null): string {
  if (!address) return "unknown";
  let text = address.toLowerCase();
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  if (text.startsWith("::ffff:") && text.includes(".")) return text.slice(7);
  if (!text.includes(":")) return text;
  const [head = "", tail = ""] = text.split("::", 2) as [string, string?];
  const left = head === "" ? [] : head.split(":");
  const right = text.includes("::") && tail !== "" ? tail.split(":") : [];
  const groups = text.includes("::")
    ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right]
    : left;
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":") + "::/64";
}
