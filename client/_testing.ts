/**
 * Test helpers for the client's raw HTTP/1.1 code (lib/http1.ts and the
 * modules' http backend): a TCP server whose connections a test scripts
 * byte by byte.
 *
 * @module
 */

/** A listening raw TCP server on 127.0.0.1. */
export interface RawServer {
  /** The ephemeral port. */
  readonly port: number;
  /** `http://127.0.0.1:PORT/m`. */
  readonly url: URL;
  /** Connections accepted so far. */
  connections(): number;
  /** Stops listening, closes every connection and waits for the handlers. */
  close(): Promise<void>;
}

/**
 * Starts a raw TCP server: each connection gets the handler, and is closed
 * when the handler ends.
 *
 * @param handler Scripts one connection; `index` counts connections from 0.
 * @returns The server.
 */
export function rawServer(
  handler: (conn: Deno.Conn, index: number) => Promise<void>,
): RawServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  let count = 0;
  const open = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const loop = (async () => {
    for await (const conn of listener) {
      const index = count++;
      open.add(conn);
      tasks.push(
        handler(conn, index).catch(() => {}).finally(() => {
          open.delete(conn);
          try {
            conn.close();
          } catch { /* closed */ }
        }),
      );
    }
  })();
  return {
    port,
    url: new URL(`http://127.0.0.1:${port}/m`),
    connections: () => count,
    async close() {
      listener.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      await loop.catch(() => {});
      await Promise.all(tasks);
    },
  };
}

/**
 * Reads one request head from a connection.
 *
 * @param conn The connection.
 * @returns The head's text, or null when the peer closed first.
 */
export async function readRequest(conn: Deno.Conn): Promise<string | null> {
  let text = "";
  const buffer = new Uint8Array(4096);
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) return null;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return text;
}
