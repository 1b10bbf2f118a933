/**
 * The worker of {@linkcode createBcryptPool} (see bcrypt_pool.ts): checks one
 * password against its bcrypt hash per message, off the main thread.
 *
 * @module
 */

import bcrypt from "bcryptjs";

/** A check asked for. */
export interface BcryptJob {
  /** Matches the answer to the job. */
  id: number;
  /** The password given. */
  password: string;
  /** The bcrypt hash to check it against. */
  hash: string;
}

/** Its answer. */
export interface BcryptAnswer {
  /** The job's id. */
  id: number;
  /** True when the password matches the hash. */
  ok: boolean;
}

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<BcryptJob>) => void) | null;
  postMessage(message: BcryptAnswer): void;
};

scope.onmessage = (event) => {
  const { id, password, hash } = event.data;
  let ok = false;
  try {
    ok = bcrypt.compareSync(password, hash);
  } catch {
    ok = false;
  }
  scope.postMessage({ id, ok });
};
