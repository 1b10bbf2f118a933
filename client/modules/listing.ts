/**
 * The module list served at `/` of the direct listener: HTML for people,
 * JSON when the Accept header prefers `application/json`. The JSON keeps
 * exporter_exporter's field names and structure (it marshals its module
 * structs), so tools that parse it keep working, but secrets are replaced by
 * {@linkcode REDACTED}: header values, environment values, command
 * arguments, query values of backend paths and passwords.
 *
 * @module
 */

import { escapeHtml, pageDocument } from "../../lib/page_style.ts";
import type { LoadedConfig, ModuleConfig } from "./config.ts";

/** What the HTML listing shows of one module (no secrets). */
export interface ModuleSummary {
  /** `http`, `exec` or `file`. */
  method: string;
  /** The module timeout in milliseconds, when set. */
  timeout_ms?: number;
  /** http modules: where the backend is (no query, headers or credentials). */
  http?: {
    scheme: string;
    address: string;
    port: number;
    path: string;
    verify: boolean;
    /** Names of the configured headers (values are hidden). */
    header_names: string[];
    basic_auth: boolean;
  };
  /** exec modules: the command (arguments and environment values are hidden). */
  exec?: { command: string; env_names: string[] | null };
  /** file modules: the file. */
  file?: { path: string };
}

/**
 * Summarises a module without its secrets.
 *
 * @param module The module.
 * @returns The summary.
 */
export function summarizeModule(module: ModuleConfig): ModuleSummary {
  const summary: ModuleSummary = { method: module.method };
  if (module.timeoutMs !== undefined) summary.timeout_ms = module.timeoutMs;
  if (module.method === "http") {
    const { http } = module;
    summary.http = {
      scheme: http.scheme,
      address: http.address,
      port: http.port,
      path: http.path,
      verify: http.verify,
      header_names: [
        ...http.headers.map(([name]) => name),
        ...(http.host !== undefined ? ["host"] : []),
      ],
      basic_auth: http.basicAuth !== undefined,
    };
  } else if (module.method === "exec") {
    summary.exec = {
      command: module.exec.command,
      env_names: module.exec.env === undefined ? null : Object.keys(module.exec.env),
    };
  } else {
    summary.file = { path: module.file.path };
  }
  return summary;
}

function qualityOf(accept: string, matches: (type: string) => boolean): number {
  let best = 0;
  for (const part of accept.split(",")) {
    const [type, ...params] = part.trim().toLowerCase().split(";").map((s) => s.trim());
    if (type === undefined || !matches(type)) continue;
    const q = params.find((p) => p.startsWith("q="));
    const value = q === undefined ? 1 : Number(q.slice(2));
    if (Number.isFinite(value) && value > best) best = value;
  }
  return best;
}

/**
 * Says whether an Accept header prefers JSON over HTML. exporter_exporter
 * compares the header with `application/json` exactly; this also reads
 * lists and q-values, and an exact `application/json` still gets JSON.
 *
 * @param accept The Accept header, if any.
 * @returns True for JSON.
 */
export function prefersJson(accept: string | null | undefined): boolean {
  if (!accept) return false;
  const json = qualityOf(accept, (t) => t === "application/json");
  const html = qualityOf(accept, (t) => t === "text/html" || t === "text/*" || t === "*/*");
  return json > 0 && json > html;
}

/** What the JSON listing shows in place of a secret (Prometheus' marker). */
export const REDACTED = "<secret>";

/** One module in exporter_exporter's JSON (its Go structs marshalled, 0.4). */
export interface ExpexpModuleJson {
  Method: string;
  /** A Go time.Duration: nanoseconds; 0 when not set. */
  Timeout: number;
  XXX: null;
  Exec: {
    Command: string;
    Args: string[] | null;
    Env: Record<string, string> | null;
    XXX: null;
  };
  HTTP: {
    Verify: boolean | null;
    TLSInsecureSkipVerify: boolean;
    TLSCertFile: string | null;
    TLSKeyFile: string | null;
    TLSCACertFile: string | null;
    Port: number;
    Path: string;
    Scheme: string;
    Address: string;
    Headers: Record<string, string> | null;
    XXX: null;
  };
  /** Only for file modules (newer exporter_exporter; 0.4 has none). */
  File?: { Path: string };
}

function redactedPath(path: string, query: ReadonlyArray<readonly [string, string]>): string {
  if (query.length === 0) return path;
  return `${path}?${
    query.map(([name]) => `${encodeURIComponent(name)}=${encodeURIComponent(REDACTED)}`).join("&")
  }`;
}

/**
 * One module as exporter_exporter's JSON shows it, secrets redacted.
 *
 * @param module The module.
 * @returns The JSON value.
 */
export function expexpModule(module: ModuleConfig): ExpexpModuleJson {
  const out: ExpexpModuleJson = {
    Method: module.method,
    Timeout: Math.round((module.timeoutMs ?? 0) * 1e6),
    XXX: null,
    Exec: { Command: "", Args: null, Env: null, XXX: null },
    HTTP: {
      Verify: null,
      TLSInsecureSkipVerify: false,
      TLSCertFile: null,
      TLSKeyFile: null,
      TLSCACertFile: null,
      Port: 0,
      Path: "",
      Scheme: "",
      Address: "",
      Headers: null,
      XXX: null,
    },
  };
  if (module.method === "http") {
    const { http } = module;
    const headers: Record<string, string> = {};
    for (const [name] of http.headers) headers[name] = REDACTED;
    if (http.host !== undefined) headers["host"] = http.host;
    out.HTTP = {
      Verify: http.verify,
      TLSInsecureSkipVerify: http.tls.insecureSkipVerify,
      TLSCertFile: http.tls.clientCertificate?.certFile ?? null,
      TLSKeyFile: http.tls.clientCertificate?.keyFile ?? null,
      TLSCACertFile: http.tls.caCertFile ?? null,
      Port: http.port,
      Path: redactedPath(http.path, http.query),
      Scheme: http.scheme,
      Address: http.address,
      Headers: Object.keys(headers).length > 0 ? headers : null,
      XXX: null,
    };
  } else if (module.method === "exec") {
    const { exec } = module;
    out.Exec = {
      Command: exec.command,
      Args: exec.args.length > 0 ? exec.args.map(() => REDACTED) : null,
      Env: exec.env === undefined
        ? null
        : Object.fromEntries(Object.keys(exec.env).map((name) => [name, REDACTED])),
      XXX: null,
    };
  } else {
    out.File = { Path: module.file.path };
  }
  return out;
}

/**
 * The JSON listing in exporter_exporter's shape: module name → module.
 *
 * @param config The configuration.
 * @returns The JSON text.
 */
export function expexpModulesJson(config: LoadedConfig): string {
  const out: Record<string, ExpexpModuleJson> = {};
  for (const [name, module] of config.modules) out[name] = expexpModule(module);
  return JSON.stringify(out) + "\n";
}

/** Where a module's metrics come from, for people (no secrets: see summarizeModule). */
function moduleSource(summary: ModuleSummary): string {
  if (summary.http) {
    const { scheme, address, port, path } = summary.http;
    return `${scheme}://${address}:${port}${path}`;
  }
  return summary.exec?.command ?? summary.file?.path ?? "";
}

/**
 * The HTML listing: links to `proxy?module=NAME`, in the look of the proxy's
 * status page (lib/page_style.ts). No script; serve it with `pageHeaders()`.
 *
 * @param config The configuration.
 * @param proxyPath The path of the proxy endpoint.
 * @returns The page.
 */
export function modulesHtml(config: LoadedConfig, proxyPath = "/proxy"): string {
  const rows = [...config.modules.values()].map((module) => {
    const href = `${proxyPath}?module=${encodeURIComponent(module.name)}`;
    const summary = summarizeModule(module);
    const timeout = summary.timeout_ms === undefined
      ? '<span class="muted">default</span>'
      : `${summary.timeout_ms / 1000}s`;
    return `<tr><td data-label="Module" class="wide"><a href="${escapeHtml(href)}">${
      escapeHtml(module.name)
    }</a></td><td data-label="Method"><span class="tag">${
      escapeHtml(module.method)
    }</span></td><td data-label="Source" class="anywhere small">${
      escapeHtml(moduleSource(summary))
    }</td><td data-label="Timeout" class="num">${timeout}</td></tr>`;
  });
  const count = rows.length === 1 ? "1 module" : `${rows.length} modules`;
  return pageDocument({
    title: "PushProx client modules",
    header: `  <h1>PushProx client</h1>
  <span class="muted">${count}</span>`,
    main: `  <h2>Exporters</h2>
${
      rows.length === 0
        ? '  <div class="empty">No modules are configured (--config.file).</div>'
        : `  <table class="stack">
    <thead><tr><th>Module</th><th>Method</th><th>Source</th><th>Timeout</th></tr></thead>
    <tbody>
${rows.join("\n")}
    </tbody>
  </table>`
    }
  <p class="muted small">Scrape a module: <code>${
      escapeHtml(proxyPath)
    }?module=NAME</code> · <a href="/metrics">Client metrics</a></p>`,
  });
}
