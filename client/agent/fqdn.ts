/**
 * The default `--fqdn`: the host's fully qualified name, found the way
 * upstream PushProx finds it (hostname → first IPv4 → reverse lookup).
 *
 * @module
 */

import { lookup, reverse } from "node:dns/promises";

/**
 * Returns the host's fqdn, or its hostname when DNS cannot tell.
 *
 * @param hostname The host name. @default {Deno.hostname()}
 * @returns The fqdn.
 */
export async function detectFqdn(
  hostname: string = Deno.hostname(),
): Promise<string> {
  try {
    const { address } = await withTimeout(
      lookup(hostname, { family: 4 }),
      2000,
    );
    const names = await withTimeout(reverse(address), 2000);
    const name = names[0]?.replace(/\.$/, "");
    return name && name.length > 0 ? name : hostname;
  } catch {
    return hostname;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("DNS timeout")), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
