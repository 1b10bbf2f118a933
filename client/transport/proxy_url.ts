/**
 * `--proxy-url` parsing: the base URL without credentials, and basic auth
 * from its userinfo as upstream clients do it. Kept apart from the
 * connect-es transport (client/transport/proxy_transport.ts) so that a client on the
 * native path never loads connect-node.
 *
 * @module
 */

/** TLS settings for the connection to the proxy. */
export interface ProxyTlsOptions {
  /** PEM CA bundle replacing the system roots. */
  ca?: string;
  /** PEM client certificate for mTLS. */
  cert?: string;
  /** PEM private key. */
  key?: string;
}

/**
 * Parses and normalizes `--proxy-url`.
 *
 * @param text The URL.
 * @returns The base URL without credentials, and the credentials if any.
 * @throws {TypeError} When it is not an http(s) URL.
 */
export function parseProxyUrl(
  text: string,
): { baseUrl: string; authorization?: string } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(`Cannot use --proxy-url "${text}": not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(
      `Cannot use --proxy-url "${text}": the scheme must be http or https`,
    );
  }
  let authorization: string | undefined;
  if (url.username !== "" || url.password !== "") {
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    authorization = "Basic " +
      btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${pass}`)));
    url.username = "";
    url.password = "";
  }
  url.search = "";
  url.hash = "";
  const baseUrl = url.toString().replace(/\/+$/, "");
  return authorization === undefined ? { baseUrl } : { baseUrl, authorization };
}
