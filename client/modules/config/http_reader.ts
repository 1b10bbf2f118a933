/**
 * The `http:` block of a module: port, address, scheme, path, headers,
 * basic auth, verify and backend TLS, with exporter_exporter's defaults.
 *
 * @module
 */

import type { BackendTlsConfig, HttpBackendConfig } from "./types.ts";
import {
  byKey,
  childPath,
  CONTROL_REGEXP,
  type Entry,
  type Reader,
  type Value,
} from "./yaml_reader.ts";

const HTTP_KEYS = [
  "port",
  "address",
  "scheme",
  "path",
  "headers",
  "verify",
  "basic_auth_username",
  "basic_auth_password",
  "tls_insecure_skip_verify",
  "tls_cert_file",
  "tls_key_file",
  "tls_ca_cert_file",
  "tls_root_ca_file",
  "server_name",
];
const HEADER_NAME_REGEXP = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE_BAD_REGEXP = /[\r\n\0]/;
const URL_SCHEME_REGEXP = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const BAD_ESCAPE_REGEXP = /%(?![0-9A-Fa-f]{2})/;

function hostPort(address: string, port: number): string {
  return address.includes(":") && !address.startsWith("[")
    ? `[${address}]:${port}`
    : `${address}:${port}`;
}

/**
 * Reads a module's `http:` block.
 *
 * @param r The reader.
 * @param entry The `http` key, if present.
 * @param path Its key path.
 * @param active Whether the module's method is http (else the block is
 * only checked loosely, and ignored).
 * @returns The backend, with whether `verify` was set; undefined when absent
 * or inactive.
 */
export function readHttp(
  r: Reader,
  entry: Entry | undefined,
  path: string,
  active: boolean,
): (HttpBackendConfig & { verifySet: boolean }) | undefined {
  if (entry === undefined) return undefined;
  const block = r.resolve(entry.value, path);
  const keys = byKey(r, r.entries(block, path), HTTP_KEYS, "http", active);
  const str = (key: string): string | undefined => {
    const e = keys.get(key);
    return e === undefined ? undefined : r.string(e.value, e.path);
  };
  const bool = (key: string): boolean | undefined => {
    const e = keys.get(key);
    return e === undefined ? undefined : r.bool(e.value, e.path);
  };
  const where = (key: string): [Value, string] => {
    const e = keys.get(key);
    return e === undefined ? [entry.keyNode, childPath(path, key)] : [e.value ?? e.keyNode, e.path];
  };

  const portEntry = keys.get("port");
  const port = (portEntry === undefined ? undefined : r.int(portEntry.value, portEntry.path)) ?? 0;
  const verifyValue = bool("verify");
  const insecureSkipVerify = bool("tls_insecure_skip_verify") ?? false;
  const fileKey = (key: string): string | undefined => {
    const value = str(key);
    if (value === "" && active) r.fail(...where(key), "must not be empty");
    return value === "" ? undefined : value;
  };
  const certFile = fileKey("tls_cert_file");
  const keyFile = fileKey("tls_key_file");
  const caCertFile = fileKey("tls_ca_cert_file");
  const rootCaFile = fileKey("tls_root_ca_file");
  const serverName = str("server_name") || undefined;
  const username = str("basic_auth_username") ?? "";
  const password = str("basic_auth_password") ?? "";
  const headerEntries = keys.has("headers")
    ? r.stringMap(keys.get("headers")!.value, keys.get("headers")!.path)
    : [];

  if (!active) {
    // Type-checked like upstream, otherwise unused.
    return undefined;
  }

  if (port === 0) r.fail(...where("port"), "must be a non-zero port");
  if (port < 1 || port > 65535) {
    r.fail(...where("port"), `must be between 1 and 65535, got ${port}`);
  }

  const schemeText = (str("scheme") || "http").toLowerCase();
  if (schemeText !== "http" && schemeText !== "https") {
    r.fail(
      ...where("scheme"),
      `expected http or https, got ${JSON.stringify(schemeText)}`,
    );
  }
  const scheme: "http" | "https" = schemeText;

  const address = str("address") || "localhost";
  if (/[\s/?#@]/.test(address) || CONTROL_REGEXP.test(address)) {
    r.fail(
      ...where("address"),
      `expected a host name or IP address, got ${JSON.stringify(address)}`,
    );
  }

  let rawPath = str("path") || "/metrics";
  if (CONTROL_REGEXP.test(rawPath)) {
    r.fail(...where("path"), "contains a control character");
  }
  if (URL_SCHEME_REGEXP.test(rawPath) || rawPath.startsWith("//")) {
    r.fail(
      ...where("path"),
      `expected a path such as /metrics, got the URL ${JSON.stringify(rawPath)}`,
    );
  }
  const hash = rawPath.indexOf("#");
  if (hash >= 0) {
    r.warn(...where("path"), "the #fragment is ignored, as upstream");
    rawPath = rawPath.slice(0, hash);
  }
  const question = rawPath.indexOf("?");
  let pathname = question >= 0 ? rawPath.slice(0, question) : rawPath;
  const queryText = question >= 0 ? rawPath.slice(question + 1) : "";
  if (BAD_ESCAPE_REGEXP.test(pathname)) {
    r.fail(...where("path"), `invalid %-escape in ${JSON.stringify(pathname)}`);
  }
  if (!pathname.startsWith("/")) {
    r.warn(
      ...where("path"),
      `${JSON.stringify(pathname)} does not start with "/"; using ${
        JSON.stringify("/" + pathname)
      } (exporter_exporter sent it as an invalid request line)`,
    );
    pathname = "/" + pathname;
  }
  const query = [...new URLSearchParams(queryText)].map(
    ([k, v]) => [k, v] as const,
  );

  const headers: (readonly [string, string])[] = [];
  let host: string | undefined;
  let hostEntry: Entry | undefined;
  for (const [header, value] of headerEntries) {
    if (!HEADER_NAME_REGEXP.test(header.key)) {
      r.fail(
        header.keyNode,
        header.path,
        `invalid header name ${JSON.stringify(header.key)}`,
      );
    }
    if (HEADER_VALUE_BAD_REGEXP.test(value)) {
      r.fail(
        header.value ?? header.keyNode,
        header.path,
        "header value contains CR, LF or NUL",
      );
    }
    if (header.key.toLowerCase() === "host") {
      if (hostEntry !== undefined) {
        r.fail(
          header.keyNode,
          header.path,
          `conflicts with ${hostEntry.path}: only one Host header can be set`,
        );
      }
      hostEntry = header;
      if (header.key !== "host") {
        r.warn(
          header.keyNode,
          header.path,
          `overrides the Host header here; exporter_exporter only did so for the lowercase spelling "host" and ignored ${
            JSON.stringify(header.key)
          }`,
        );
      }
      host = value === "" ? undefined : value;
      continue;
    }
    headers.push([header.key, value]);
  }

  let basicAuth: HttpBackendConfig["basicAuth"];
  if (username !== "" && password !== "") {
    basicAuth = { username, password };
  } else if (username !== "" || password !== "") {
    r.warn(
      ...where(username !== "" ? "basic_auth_username" : "basic_auth_password"),
      "ignored: basic auth is only sent when both basic_auth_username and basic_auth_password are set",
    );
  }

  let clientCertificate: BackendTlsConfig["clientCertificate"];
  if (certFile !== undefined && keyFile !== undefined) {
    clientCertificate = { certFile, keyFile };
  } else if (certFile !== undefined || keyFile !== undefined) {
    r.warn(
      ...where(certFile !== undefined ? "tls_cert_file" : "tls_key_file"),
      "ignored: a client certificate is only used when both tls_cert_file and tls_key_file are set",
    );
  }
  if (caCertFile !== undefined) {
    r.warn(
      ...where("tls_ca_cert_file"),
      "exporter_exporter loaded this file but never used it to verify the backend (it only set ClientCAs); here it is trusted as a backend CA in addition to the system roots, like tls_root_ca_file",
    );
  }
  const trustedCaFiles = [
    ...new Set(
      [rootCaFile, caCertFile].filter((f): f is string => f !== undefined),
    ),
  ];
  if (scheme === "http") {
    for (
      const key of [
        "tls_insecure_skip_verify",
        "tls_cert_file",
        "tls_key_file",
        "tls_ca_cert_file",
        "tls_root_ca_file",
        "server_name",
      ]
    ) {
      if (keys.has(key)) {
        r.warn(...where(key), "has no effect with scheme http");
      }
    }
  }

  const search = new URLSearchParams(query.map(([k, v]) => [k, v]))
    .toString();
  return {
    scheme,
    address,
    port,
    path: pathname,
    query,
    url: `${scheme}://${hostPort(address, port)}${pathname}${search === "" ? "" : `?${search}`}`,
    headers,
    host,
    basicAuth,
    verify: verifyValue ?? true,
    verifySet: verifyValue !== undefined,
    tls: {
      insecureSkipVerify,
      clientCertificate,
      rootCaFile,
      caCertFile,
      trustedCaFiles,
      serverName,
    },
  };
}
