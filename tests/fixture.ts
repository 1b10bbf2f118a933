/**
 * Turns a test fixture with a `close()` or `stop()` into one `await using`
 * disposes of, so that a test stops what it started without try/finally:
 *
 * ```ts
 * import { startSecureProxy } from "./secure_stack.ts";
 *
 * await using proxy = closing(await startSecureProxy());
 * // … requests to proxy.url; the proxy is closed when the scope ends.
 * ```
 *
 * @module
 */

/** Something that is stopped by `close()`. */
export interface Closable {
  close(): Promise<void> | void;
}

/**
 * Adds `Symbol.asyncDispose` (calling `close()`) to a fixture.
 *
 * @param fixture The fixture.
 * @returns The same object, disposable.
 */
export function closing<T extends Closable>(fixture: T): T & AsyncDisposable {
  return Object.assign(fixture, {
    [Symbol.asyncDispose]: async () => await fixture.close(),
  });
}

/** Something that is stopped by `stop()`. */
export interface Stoppable {
  stop(): Promise<unknown> | unknown;
}

/**
 * Adds `Symbol.asyncDispose` (calling `stop()`) to a fixture.
 *
 * @param fixture The fixture.
 * @returns The same object, disposable.
 */
export function stopping<T extends Stoppable>(fixture: T): T & AsyncDisposable {
  return Object.assign(fixture, {
    [Symbol.asyncDispose]: async () => {
      await fixture.stop();
    },
  });
}

/** A temporary directory, removed with everything in it when disposed. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
}

/**
 * Makes a temporary directory.
 *
 * @param options As for `Deno.makeTempDir` (a prefix, say).
 * @returns The directory; `await using` removes it.
 */
export async function tempDir(options?: Deno.MakeTempOptions): Promise<TempDir> {
  const path = await Deno.makeTempDir(options);
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}
