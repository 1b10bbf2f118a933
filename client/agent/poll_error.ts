/**
 * Turns what the Connect client throws for a failed Poll stream into a line
 * an operator can act on. The important case: something between client and
 * proxy (a load balancer, an ingress, a corporate proxy) answered with its
 * own page, e.g. nginx's HTML "502 Bad Gateway", which is never data.
 *
 * @module
 */

import { callErrorOf } from "../transport/call_error.ts";

const CONNECT_TYPE_REGEXP = /^application\/(connect\+)?(proto|json)\b/i;

/**
 * Describes a Poll failure for the log.
 *
 * @param error What the stream threw (or the watchdog's reason).
 * @returns One line; for non-Connect answers it names status and content type.
 */
export function describePollError(error: unknown): string {
  const failure = callErrorOf(error);
  if (failure !== null) {
    const status = /^HTTP (\d{3})$/.exec(failure.rawMessage)?.[1];
    const wrongType = /^unsupported content type/.test(failure.rawMessage);
    const contentType = (failure.metadata.get("content-type") ?? "").split(";", 1)[0]!.trim();
    if ((status !== undefined || wrongType) && !CONNECT_TYPE_REGEXP.test(contentType)) {
      return `proxy answered HTTP ${status ?? "200"} ${
        contentType || "without a content type"
      } instead of a Connect stream — ${hint(Number(status ?? 200))}`;
    }
    return (error as Error).message;
  }
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" && !error.message.includes(code)
      ? `${error.message} (${code})`
      : error.message;
  }
  return String(error);
}

function hint(status: number): string {
  switch (status) {
    case 404:
      return "is the --proxy-url path right, or does a load balancer route it elsewhere?";
    case 401:
    case 403:
      return "does a load balancer or proxy in between want credentials?";
    case 407:
      return "the HTTP proxy wants credentials (user:pass@ in HTTPS_PROXY/HTTP_PROXY)";
    default:
      return "a load balancer or proxy in between?";
  }
}
