/**
 * The Authorization header on connect-es calls to the proxy (the fallback
 * path; the native path sets it itself, sharing the same state).
 *
 * @module
 */

import type { Transport } from "@connectrpc/connect";

/**
 * Wraps a Connect transport so that every call carries an Authorization
 * header; one transport serves one Poll stream at a time.
 *
 * @param transport The transport to the proxy.
 * @param authorization Returns the header value; called per call.
 * @param state Holds the header value in use, shared with the native push path.
 * @returns The wrapped transport.
 */
export function withAuthorization(
  transport: Transport,
  authorization: () => string,
  state: { current: string | null } = { current: null },
): Transport {
  // The proxy binds a stream to the credential it was opened with and accepts
  // pushes only with that credential: the header is read again when a Poll
  // stream opens (a rotated token takes effect at the next reconnection) and
  // reused for the pushes that follow (also the native ones, through `state`).
  const headers = (init: HeadersInit | undefined, method: { name: string }) => {
    if (state.current === null || method.name === "Poll") state.current = authorization();
    const h = new Headers(init);
    h.set("authorization", state.current);
    return h;
  };
  return {
    unary(method, signal, timeoutMs, header, input, contextValues) {
      return transport.unary(
        method,
        signal,
        timeoutMs,
        headers(header, method),
        input,
        contextValues,
      );
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      return transport.stream(
        method,
        signal,
        timeoutMs,
        headers(header, method),
        input,
        contextValues,
      );
    },
  };
}
