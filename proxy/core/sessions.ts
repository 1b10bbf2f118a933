/**
 * The coordinator's session registry: one record per registered fqdn (who
 * the client said it is, its current stream, when it was last there) and the
 * budgets a registration must pass (identity size, credential, per-source
 * rate and count, clients and bytes held). No I/O and no timers; the clock
 * is injected. {@linkcode createCoordinator} drives it.
 *
 * @module
 */

import { hostKey } from "../../lib/host.ts";
import { CoordinatorError } from "./coordinator_error.ts";
import { identityBytes, identityProblem } from "./identity.ts";
import { createTokenBuckets, type TokenBuckets } from "./rate_limit.ts";

/** Who a client says it is when it registers. */
export interface ClientIdentity {
  /** The host name Prometheus scrapes; the routing key. */
  fqdn: string;
  labels: Record<string, string>;
  version: string;
  modules: string[];
  /** The wire protocol the client speaks, e.g. "connect". */
  protocol: string;
  /** The proxies the client says it streams to, from its own view. */
  proxies?: string[];
  /** The network address the stream came from, e.g. "10.0.0.5:51234". */
  peerAddress?: string;
  /** True when the client refuses raw scrapes (serves only its modules). */
  modulesOnly?: boolean;
}

/** How a finished scrape went, as the proxy answered Prometheus. */
export interface ScrapeResult {
  /** The HTTP status sent to Prometheus. */
  status: number;
  /** Why it failed; empty on success. */
  error: string;
  durationMs: number;
  /** Body bytes relayed to Prometheus. @default {0} */
  bytes?: number;
}

/** A finished scrape as kept in a client's recent history. */
export interface ScrapeOutcome extends ScrapeResult {
  /** When it finished, on the coordinator's clock. */
  at: number;
  bytes: number;
}

/** A change in the registry, for watchers (see {@linkcode Coordinator.subscribe}). */
export type RegistryEvent =
  | { kind: "connected"; client: ClientInfo }
  | { kind: "disconnected"; fqdn: string; at: number }
  | { kind: "scraped"; fqdn: string; outcome: ScrapeOutcome; inFlight: number }
  | { kind: "forgotten"; fqdn: string };

/** Receives registry changes synchronously; must not throw (errors are ignored). */
export type RegistryListener = (event: RegistryEvent) => void;

/** A registered client as listed by `/clients` and `ListClients`. */
export interface ClientInfo extends ClientIdentity {
  connected: boolean;
  connectedSince: number;
  /** 0 when it was never scraped. */
  lastScrape: number;
  inFlight: number;
  /** The last finished scrape; null if none finished yet. */
  lastResult?: ScrapeResult | null;
  /** When the last stream ended; 0 while connected. */
  disconnectedAt?: number;
  /** The last finished scrapes, oldest first. */
  recentScrapes?: ScrapeOutcome[];
}

/** What the registry needs of a stream: its id and the source it counts under. */
export interface RegisteredStream {
  readonly id: string;
  /** The per-source key it counts under; "" for none. */
  readonly source: string;
}

/** One registered fqdn. */
export interface ClientRecord<S extends RegisteredStream = RegisteredStream> {
  identity: ClientIdentity;
  /** The open stream; null while disconnected. */
  session: S | null;
  connectedSince: number;
  disconnectedAt: number;
  lastScrape: number;
  inFlight: number;
  lastResult: ScrapeResult | null;
  /** The last finished scrapes, oldest first, at most `recentScrapes`. */
  recent: ScrapeOutcome[];
  /** The credential of the current (or last) stream. */
  credential: string;
  key: string;
  /** Estimated size, counted in the registry's bytes. */
  bytes: number;
  /** Worth keeping after its stream ends: it lived past keepAfterMs, or was scraped. */
  useful: boolean;
}

/** The registry's budgets, each refusing registrations with the kind named. */
export interface RegistryLimits {
  /** Most clients listed at once; more registrations fail ("too_many_clients"). 0: no limit. @default {0} */
  maxClients?: number;
  /**
   * Most bytes the registry may hold, estimated from each record's strings
   * (see identityBytes in identity.ts); more registrations fail
   * ("registry_full") once disconnected records cannot make room. 0: no
   * limit. @default {0}
   */
  maxRegistryBytes?: number;
  /** Largest estimated size of one registration ("invalid_identity"). 0: no limit. @default {0} */
  maxIdentityBytes?: number;
  /**
   * Most connected streams from one source ("too_many_from_source"); see
   * the `source` of `Coordinator.register`. 0: no limit. @default {0}
   */
  maxClientsPerSource?: number;
  /**
   * Registrations per second from one source, with
   * `registrationBurstPerSource` at once ("rate_limited"). 0: no
   * limit. @default {0}
   */
  registrationRatePerSource?: number;
  /** Registrations one source may make at once. @default {registrationRatePerSource} */
  registrationBurstPerSource?: number;
  /**
   * A record whose streams all ended sooner than this after they registered,
   * and that was never scraped, is forgotten when its stream ends instead of
   * staying listed for `registrationTimeoutMs`: registrations dropped at
   * once hold no place in the registry. 0: every record stays. @default {0}
   */
  keepAfterMs?: number;
}

/** Options for {@linkcode createSessionRegistry}. */
export interface SessionRegistryOptions extends RegistryLimits {
  /** How long a client stays listed after its stream ends. */
  registrationTimeoutMs: number;
  /** @default {Date.now} */
  now?: () => number;
  /** Told of "disconnected" and "forgotten" changes, synchronously. */
  emit?: (event: RegistryEvent) => void;
}

/** A registration let in by {@linkcode SessionRegistry.admit}. */
export interface Admission<S extends RegisteredStream> {
  /** The fqdn's record, created or updated with the new identity. */
  record: ClientRecord<S>;
  /** The stream the new one replaces, if one was open. */
  previous: S | null;
}

/** The session registry. */
export interface SessionRegistry<S extends RegisteredStream> {
  /**
   * Checks a registration against every budget, making room by evicting
   * disconnected records when needed, and updates (or creates) the fqdn's
   * record with the new identity and credential. Call
   * {@linkcode SessionRegistry.attach} next with the new stream.
   *
   * @throws {CoordinatorError} "invalid_identity", "credential_mismatch",
   * "rate_limited", "too_many_from_source", "too_many_clients" or
   * "registry_full".
   */
  admit(identity: ClientIdentity, credential: string, source: string): Admission<S>;
  /** Makes `session` the record's open stream. */
  attach(record: ClientRecord<S>, session: S): void;
  /**
   * The record's stream ended (no-op unless `session` is the open one).
   * `lastSeen` says when the client was last there, when before now.
   */
  detach(record: ClientRecord<S>, session: S, lastSeen?: number): void;
  /** The record for a host (any letter case, trailing dot or not). */
  lookup(host: string): ClientRecord<S> | undefined;
  /** Whether a record is listed at `at`: connected, or not disconnected for long. */
  isListed(record: ClientRecord<S>, at: number): boolean;
  /** The record as listed. */
  info(record: ClientRecord<S>): ClientInfo;
  /** Every record, listed or not. */
  records(): IterableIterator<ClientRecord<S>>;
  /** Forgets records disconnected longer than the registration timeout. */
  expire(): number;
  /** Listed clients, sorted by fqdn. */
  list(): ClientInfo[];
  /** Number of listed clients. */
  readonly count: number;
  /** Estimated bytes held by the records. */
  readonly bytes: number;
}

/**
 * Creates a session registry.
 *
 * @param options Registration timeout, clock, budgets and the event sink.
 * @returns The registry.
 */
export function createSessionRegistry<S extends RegisteredStream>(
  options: SessionRegistryOptions,
): SessionRegistry<S> {
  const now = options.now ?? Date.now;
  const emit = options.emit ?? (() => {});
  const clients = new Map<string, ClientRecord<S>>();
  /** Records without a stream, oldest disconnection first: evicted first when full. */
  const idle = new Map<string, ClientRecord<S>>();
  /** Connected streams by source. */
  const perSource = new Map<string, number>();
  const registrations: TokenBuckets | null = (options.registrationRatePerSource ?? 0) > 0
    ? createTokenBuckets({
      ratePerSecond: options.registrationRatePerSource!,
      burst: Math.max(
        1,
        options.registrationBurstPerSource ?? options.registrationRatePerSource!,
      ),
      now,
    })
    : null;
  let registryBytes = 0;

  function countSource(source: string, delta: number): void {
    if (source === "") return;
    const count = (perSource.get(source) ?? 0) + delta;
    if (count <= 0) perSource.delete(source);
    else perSource.set(source, count);
  }

  function forget(record: ClientRecord<S>): void {
    if (clients.get(record.key) !== record) return;
    clients.delete(record.key);
    idle.delete(record.key);
    registryBytes -= record.bytes;
    emit({ kind: "forgotten", fqdn: record.identity.fqdn });
  }

  function isListed(record: ClientRecord<S>, at: number): boolean {
    return record.session !== null ||
      at - record.disconnectedAt < options.registrationTimeoutMs;
  }

  /**
   * Evicts disconnected records, oldest first, until `count` more records
   * and `bytes` more bytes fit; false when they cannot.
   */
  function makeRoom(count: number, bytes: number, at: number): boolean {
    const maxClients = options.maxClients ?? 0;
    const maxBytes = options.maxRegistryBytes ?? 0;
    const fits = () =>
      (maxClients <= 0 || clients.size + count <= maxClients) &&
      (maxBytes <= 0 || registryBytes + bytes <= maxBytes);
    if (fits()) return true;
    // Forgotten clients go first, then the longest disconnected.
    for (const record of [...idle.values()]) {
      if (!isListed(record, at) && record.inFlight === 0) forget(record);
    }
    for (const record of [...idle.values()]) {
      if (fits()) break;
      if (record.inFlight === 0) forget(record);
    }
    return fits();
  }

  function info(record: ClientRecord<S>): ClientInfo {
    return {
      ...record.identity,
      connected: record.session !== null,
      connectedSince: record.connectedSince,
      lastScrape: record.lastScrape,
      inFlight: record.inFlight,
      proxies: record.identity.proxies ?? [],
      lastResult: record.lastResult,
      disconnectedAt: record.session === null ? record.disconnectedAt : 0,
      // Outcomes are never changed once recorded: a copy of the list is enough.
      recentScrapes: record.recent.slice(),
    };
  }

  return {
    admit(identity, credential, source) {
      const problem = identityProblem(identity, options.maxIdentityBytes ?? 0);
      if (problem !== null) {
        throw new CoordinatorError(`Cannot register: ${problem.message}`, "invalid_identity");
      }
      const key = hostKey(identity.fqdn);
      const at = now();
      let record = clients.get(key);
      if (record?.session && record.credential !== credential) {
        throw new CoordinatorError(
          `"${identity.fqdn}" is connected with another credential; it cannot be taken over`,
          "credential_mismatch",
        );
      }
      if (registrations !== null && source !== "") {
        const waitMs = registrations.take(source);
        if (waitMs > 0) {
          throw new CoordinatorError(
            `Cannot register "${identity.fqdn}": too many registrations from ${source} (--registration.rate-per-source ${options.registrationRatePerSource}/s); retry in ${
              Math.ceil(waitMs / 1000)
            }s`,
            "rate_limited",
            waitMs,
          );
        }
      }
      const perSourceLimit = options.maxClientsPerSource ?? 0;
      if (
        perSourceLimit > 0 && source !== "" && record?.session?.source !== source &&
        (perSource.get(source) ?? 0) >= perSourceLimit
      ) {
        throw new CoordinatorError(
          `Cannot register "${identity.fqdn}": ${source} already has ${
            perSource.get(source)
          } connected clients (--clients.max-per-source)`,
          "too_many_from_source",
        );
      }
      const bytes = identityBytes(identity);
      // A returning client's own record is not evicted to make room for it.
      const wasIdle = record !== undefined && idle.delete(key);
      if (!makeRoom(record === undefined ? 1 : 0, bytes - (record?.bytes ?? 0), at)) {
        if (wasIdle) idle.set(key, record!);
        const full = (options.maxClients ?? 0) > 0 && clients.size >= options.maxClients!;
        throw full
          ? new CoordinatorError(
            `Cannot register "${identity.fqdn}": the proxy already has ${clients.size} clients (--clients.max)`,
            "too_many_clients",
          )
          : new CoordinatorError(
            `Cannot register "${identity.fqdn}": the registry holds about ${registryBytes} bytes (--registry.max-bytes ${options.maxRegistryBytes})`,
            "registry_full",
          );
      }
      if (record === undefined) {
        record = {
          identity,
          session: null,
          connectedSince: at,
          disconnectedAt: at,
          lastScrape: 0,
          inFlight: 0,
          lastResult: null,
          recent: [],
          credential,
          key,
          bytes: 0,
          useful: false,
        };
        clients.set(key, record);
      }
      registryBytes += bytes - record.bytes;
      record.bytes = bytes;
      idle.delete(key);
      const previous = record.session;
      const keepAfter = options.keepAfterMs ?? 0;
      if (previous && at - record.connectedSince >= keepAfter) record.useful = true;
      record.identity = identity;
      record.credential = credential;
      record.connectedSince = at;
      if (previous) countSource(previous.source, -1);
      return { record, previous };
    },

    attach(record, session) {
      record.session = session;
      countSource(session.source, 1);
    },

    detach(record, session, lastSeen) {
      if (record.session !== session) return;
      const at = now();
      record.session = null;
      record.disconnectedAt = lastSeen !== undefined && lastSeen < at ? lastSeen : at;
      emit({ kind: "disconnected", fqdn: record.identity.fqdn, at: record.disconnectedAt });
      countSource(session.source, -1);
      const keepAfter = options.keepAfterMs ?? 0;
      if (keepAfter > 0 && !record.useful && at - record.connectedSince >= keepAfter) {
        record.useful = true;
      }
      if (keepAfter > 0 && !record.useful && record.inFlight === 0) {
        // Dropped at once: it holds no place for registrationTimeoutMs.
        forget(record);
      } else if (clients.get(record.key) === record) {
        idle.delete(record.key);
        idle.set(record.key, record);
      }
    },

    lookup(host) {
      return clients.get(hostKey(host));
    },

    isListed,
    info,

    records() {
      return clients.values();
    },

    expire() {
      const at = now();
      let removed = 0;
      for (const record of [...idle.values()]) {
        if (!isListed(record, at) && record.inFlight === 0) {
          forget(record);
          removed++;
        }
      }
      return removed;
    },

    list() {
      const at = now();
      const list: ClientInfo[] = [];
      for (const record of clients.values()) {
        if (isListed(record, at)) list.push(info(record));
      }
      return list.sort((a, b) => a.fqdn < b.fqdn ? -1 : a.fqdn > b.fqdn ? 1 : 0);
    },

    get count() {
      let count = 0;
      const at = now();
      for (const record of clients.values()) if (isListed(record, at)) count++;
      return count;
    },

    get bytes() {
      return registryBytes;
    },
  };
}
