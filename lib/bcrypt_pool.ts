/**
 * bcrypt checks on worker threads. bcryptjs in the main thread runs in
 * slices of up to 100 ms, and every request waits behind the slice that is
 * running, also one whose credentials are cached; on workers, password
 * checks cost the main thread nothing. Where the worker module cannot be
 * found (a bundled program), checks run in the main thread as before.
 *
 * @module
 */

import bcrypt from "bcryptjs";
import type { BcryptAnswer, BcryptJob } from "./bcrypt_worker.ts";

/** Compares passwords with bcrypt hashes. */
export interface BcryptPool {
  /** Whether `password` matches `hash` (false for a malformed hash). */
  compare(password: string, hash: string): Promise<boolean>;
  /** Whether checks run on workers (false: in the main thread). */
  readonly threaded: boolean;
  /** Stops the workers; later checks run in the main thread. Idempotent. */
  close(): void;
}

/** Options for {@linkcode createBcryptPool}. */
export interface BcryptPoolOptions {
  /** Workers started at most (each runs one check at a time). @default {2} */
  size?: number;
  /** The worker module. @default {bcrypt_worker.ts beside this module} */
  workerUrl?: URL;
}

interface Pending {
  job: BcryptJob;
  resolve(ok: boolean): void;
}

interface Slot {
  worker: Worker;
  busy: Pending | null;
}

function inThread(password: string, hash: string): Promise<boolean> {
  return bcrypt.compare(password, hash).catch(() => false);
}

function exists(url: URL): boolean {
  if (url.protocol !== "file:") return true;
  try {
    return Deno.statSync(url).isFile;
  } catch {
    return false;
  }
}

/**
 * Creates a pool; workers start with the first checks.
 *
 * @param options Size and worker module.
 * @returns The pool; `close` it when the program stops.
 */
export function createBcryptPool(options: BcryptPoolOptions = {}): BcryptPool {
  const size = Math.max(1, options.size ?? 2);
  const url = options.workerUrl ?? new URL("./bcrypt_worker.ts", import.meta.url);
  let threaded = exists(url);
  const slots: Slot[] = [];
  const queue: Pending[] = [];
  let nextId = 1;

  function fallBack(): void {
    threaded = false;
    for (const slot of slots.splice(0)) {
      slot.worker.terminate();
      if (slot.busy) queue.unshift(slot.busy);
    }
    for (const pending of queue.splice(0)) {
      inThread(pending.job.password, pending.job.hash).then(pending.resolve);
    }
  }

  function start(): Slot {
    const worker = new Worker(url.href, { type: "module" });
    const slot: Slot = { worker, busy: null };
    worker.onmessage = (event: MessageEvent<BcryptAnswer>) => {
      const pending = slot.busy;
      slot.busy = null;
      if (pending && pending.job.id === event.data.id) pending.resolve(event.data.ok);
      pump();
    };
    worker.onerror = (event) => {
      event.preventDefault();
      fallBack();
    };
    slots.push(slot);
    return slot;
  }

  function pump(): void {
    while (queue.length > 0) {
      const slot = slots.find((s) => s.busy === null) ??
        (slots.length < size ? start() : undefined);
      if (slot === undefined) return;
      const pending = queue.shift()!;
      slot.busy = pending;
      slot.worker.postMessage(pending.job);
    }
  }

  return {
    compare(password, hash) {
      if (!threaded) return inThread(password, hash);
      return new Promise<boolean>((resolve) => {
        queue.push({ job: { id: nextId++, password, hash }, resolve });
        pump();
      });
    },
    get threaded() {
      return threaded;
    },
    close() {
      fallBack();
    },
  };
}
