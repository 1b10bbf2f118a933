/**
 * The hand-off of a client's push to the scrape waiting for it: which pushes
 * may answer a scrape (its stream, its credential, once), which heads can be
 * relayed to Prometheus, and the reply the relaying side reads. No I/O;
 * {@linkcode createCoordinator} keeps the waiting scrapes and calls
 * {@linkcode handOff} for each push.
 *
 * @module
 */

import { declaredFieldLength, type DeclaredLength, type HeaderField } from "../../lib/headers.ts";
import { CoordinatorError } from "./coordinator_error.ts";

/** What the client answered: status, headers and a body to relay. */
export interface ScrapeReply {
  status: number;
  /** The target's header fields, without Content-Length (see `contentLength`). */
  headers: HeaderField[];
  /**
   * The body length the client declared (the target's Content-Length),
   * checked to be one valid number; null when none was declared.
   */
  contentLength: number | null;
  /** Non-empty when the client could not scrape; no body follows then. */
  error: string;
  /** The body, pulled by the relaying side as fast as it can write. */
  body: AsyncIterable<Uint8Array>;
  /**
   * The relaying side calls this once when it is done with the body: without
   * an argument on success, with the reason otherwise. It ends the push.
   */
  settle(error?: Error): void;
}

/** The head of a client's push. */
export interface PushHead {
  scrapeId: string;
  sessionId: string;
  status: number;
  headers: HeaderField[];
  error: string;
  /**
   * The credential the push was made with (see {@linkcode RegisterOptions});
   * when given, it must be the one the scrape's stream registered with.
   */
  credential?: string;
}

/** A scrape waiting for its client's push. */
export interface Handoff {
  id: string;
  sessionId: string;
  /** The credential of the stream the scrape was sent on. */
  credential: string;
  /** Handed to the client (not only queued). */
  sent: boolean;
  answered: boolean;
  resolve(reply: ScrapeReply): void;
  reject(error: Error): void;
}

/**
 * Hands a push to the scrape waiting for it, or refuses it.
 *
 * @param scrape The scrape the push names; undefined when none waits.
 * @param head The push's head.
 * @param body The push's body, relayed as the reply's body.
 * @param finish Called once the relaying side is done with the scrape.
 * @returns Resolves when the body was relayed, rejects when it could not
 * be, or with a CoordinatorError ("unknown_scrape", "foreign_scrape",
 * "duplicate_push", "invalid_status", "invalid") when the push is refused.
 */
export function handOff<S extends Handoff>(
  scrape: S | undefined,
  head: PushHead,
  body: AsyncIterable<Uint8Array>,
  finish: (scrape: S) => void,
): Promise<void> {
  if (scrape === undefined) {
    return Promise.reject(
      new CoordinatorError(
        `No scrape "${head.scrapeId}" is waiting (unknown, finished or timed out)`,
        "unknown_scrape",
      ),
    );
  }
  if (scrape.sessionId !== head.sessionId) {
    return Promise.reject(
      new CoordinatorError(
        `Scrape "${head.scrapeId}" was not sent to this stream`,
        "foreign_scrape",
      ),
    );
  }
  if (head.credential !== undefined && head.credential !== scrape.credential) {
    return Promise.reject(
      new CoordinatorError(
        `Scrape "${head.scrapeId}" was sent to a stream with another credential`,
        "foreign_scrape",
      ),
    );
  }
  if (scrape.answered) {
    return Promise.reject(
      new CoordinatorError(
        `Scrape "${head.scrapeId}" was already answered`,
        "duplicate_push",
      ),
    );
  }
  scrape.answered = true;
  const length = declaredFieldLength(head.headers);
  const problem = pushHeadProblem(head, length);
  if (problem !== null) {
    // Refused, never relayed: the scrape fails at once with 502 and the
    // reason, instead of waiting for its deadline.
    scrape.resolve({
      status: 502,
      headers: [],
      contentLength: null,
      error: `the client's answer is invalid: ${problem.message}`,
      body: noBody(),
      settle() {
        finish(scrape);
      },
    });
    return Promise.reject(
      new CoordinatorError(`Cannot accept the push: ${problem.message}`, problem.kind),
    );
  }
  return new Promise<void>((resolve, reject) => {
    scrape.resolve(
      new RelayedReply(
        head,
        "length" in length ? length.length : null,
        body,
        scrape,
        finish,
        resolve,
        reject,
      ),
    );
  });
}

/**
 * The reply of a push handed off to its scrape: one object per scrape,
 * its `settle` a method (not closures per scrape).
 */
class RelayedReply<S> implements ScrapeReply {
  readonly status: number;
  readonly headers: HeaderField[];
  readonly contentLength: number | null;
  readonly error: string;
  readonly body: AsyncIterable<Uint8Array>;
  readonly #scrape: S;
  #finish: ((scrape: S) => void) | null;
  readonly #resolve: () => void;
  readonly #reject: (error: Error) => void;

  constructor(
    head: PushHead,
    contentLength: number | null,
    body: AsyncIterable<Uint8Array>,
    scrape: S,
    finish: (scrape: S) => void,
    resolve: () => void,
    reject: (error: Error) => void,
  ) {
    this.status = head.status;
    this.headers = head.headers.filter(isNotContentLength);
    this.contentLength = contentLength;
    this.error = head.error;
    this.body = body;
    this.#scrape = scrape;
    this.#finish = finish;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  settle(error?: Error): void {
    const finish = this.#finish;
    if (finish === null) return;
    this.#finish = null;
    finish(this.#scrape);
    if (error) this.#reject(error);
    else this.#resolve();
  }
}

/** Content-Length goes as the reply's `contentLength`, checked, not as a field. */
function isNotContentLength(field: HeaderField): boolean {
  return field.name.length !== 14 || field.name.toLowerCase() !== "content-length";
}

/**
 * Why a push head cannot be relayed to Prometheus, or null. Only final
 * statuses (200–599) are relayed: a 1xx (101 included) would be taken as
 * interim or as a protocol switch and break the scraper's connection.
 */
function pushHeadProblem(
  head: PushHead,
  length: DeclaredLength,
): { kind: "invalid_status" | "invalid"; message: string } | null {
  if (!Number.isInteger(head.status) || head.status < 200 || head.status > 599) {
    return {
      kind: "invalid_status",
      message: `status ${head.status} is not a final HTTP status (200-599)`,
    };
  }
  if ("problem" in length) return { kind: "invalid", message: length.problem };
  return null;
}

async function* noBody(): AsyncGenerator<Uint8Array> {}
