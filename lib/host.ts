/**
 * Host names as routing keys, compared the same way on both sides.
 *
 * @module
 */

/**
 * Normalizes a host for comparison: lower case, no trailing dot, no IPv6
 * brackets.
 *
 * @param host A host name or address.
 * @returns The key.
 */
export function hostKey(host: string): string {
  let key = host.toLowerCase();
  if (key.startsWith("[") && key.endsWith("]")) key = key.slice(1, -1);
  if (key.endsWith(".")) key = key.slice(0, -1);
  return key;
}
