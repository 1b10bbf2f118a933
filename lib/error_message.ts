/**
 * The text of anything thrown, for log fields and error messages.
 *
 * @module
 */

/**
 * Returns what went wrong, in words: an error's `message` (also for
 * error-like objects from other realms), otherwise the value as a string.
 * Never throws.
 *
 * @example Describing a caught value
 * ```ts
 * import { errorMessage } from "./error_message.ts";
 * try {
 *   JSON.parse("{");
 * } catch (error) {
 *   console.log(`Cannot parse: ${errorMessage(error)}`);
 * }
 * errorMessage("plain text"); // "plain text"
 * ```
 *
 * @param error A caught value (`unknown` in `catch`).
 * @returns Its message.
 */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (
    typeof error === "object" && error !== null && "message" in error &&
    typeof error.message === "string"
  ) {
    return error.message;
  }
  try {
    return String(error);
  } catch {
    return Object.prototype.toString.call(error);
  }
}
