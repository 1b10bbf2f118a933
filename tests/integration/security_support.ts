/**
 * What the security tests share: the tokens, users and auth configuration
 * their proxies run with, and small probes.
 *
 * @module
 */

import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import bcrypt from "bcryptjs";
import { Code, ConnectError } from "@connectrpc/connect";
import { sha256Hex } from "../../lib/basic_auth.ts";

export const TOKEN_A = "token-a-0123456789abcdef";

export const TOKEN_B = "token-b-0123456789abcdef";

export const TOKEN_OLD = "token-old-0123456789abcdef";

export const READER_TOKEN = "reader-0123456789abcdef";

export const PROM_HASH = bcrypt.hashSync("prom-secret", 4);

export const GRAFANA_HASH = bcrypt.hashSync("grafana-secret", 4);

export const basic = (user: string, pass: string) => "Basic " + btoa(`${user}:${pass}`);

export const USERS = `basic_auth_users:
  prometheus: "${PROM_HASH}"
  grafana: "${GRAFANA_HASH}"
`;

export const AUTH = `
clients:
  certificates: true
  tokens:
    - name: a
      sha256: ${sha256Hex(TOKEN_A)}
      fqdns: [node-a, "shared-*"]
    - name: b
      sha256: ${sha256Hex(TOKEN_B)}
      fqdns: ["**"]
    - name: old
      sha256: ${sha256Hex(TOKEN_OLD)}
      fqdns: ["**"]
      expires: 2020-01-01T00:00:00Z
scrapers:
  basic_auth_users: [prometheus]
  certificates: [prometheus]
readers:
  basic_auth_users: [grafana, prometheus]
  tokens:
    - sha256: ${sha256Hex(READER_TOKEN)}
`;

export async function codeOf(promise: Promise<unknown>): Promise<Code | string> {
  try {
    await promise;
    return "ok";
  } catch (error) {
    return error instanceof ConnectError ? error.code : String(error);
  }
}

/** A target that records the headers it was sent. */
export async function recordingTarget(): Promise<
  { port: number; seen: IncomingMessage["headers"][]; close(): Promise<void> }
> {
  const seen: IncomingMessage["headers"][] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.end("up 1\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
