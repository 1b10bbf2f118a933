/**
 * The `Date` header's value as node:http and Go write it, formatted once a
 * second rather than per response.
 *
 * @module
 */

let dateSecond = -1;
let dateText = "";

/**
 * The current time as an HTTP date (`Wed, 02 Dec 2026 02:06:41 GMT`).
 *
 * @returns The date, the same string within a second.
 */
export function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}
