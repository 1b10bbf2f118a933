/**
 * The proxy's status page for people (`GET /`): one self-contained HTML
 * document (inline CSS and script, no external assets) that lists the
 * registered clients, filters them, and refreshes itself by calling
 * `RegistryService/ListClients` with Connect's JSON encoding. Every value a
 * client announced is put into the page with `textContent`, never parsed as
 * HTML, and the Content-Security-Policy allows only this one inline script.
 *
 * @module
 */

import { createHash } from "node:crypto";

const STYLE = `
:root { color-scheme: light dark; --fg: #1f2328; --muted: #656d76; --line: #d0d7de;
  --bg: #ffffff; --head: #f6f8fa; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #8d96a0; --line: #30363d;
  --bg: #0d1117; --head: #161b22; --ok: #3fb950; --bad: #f85149; --warn: #d29922; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; padding: 12px 20px;
  border-bottom: 1px solid var(--line); background: var(--head); }
h1 { font-size: 18px; margin: 0 12px 0 0; }
#summary, #updated { color: var(--muted); }
#filter { flex: 1 1 260px; max-width: 420px; padding: 6px 10px; font: inherit; color: inherit;
  background: var(--bg); border: 1px solid var(--line); border-radius: 6px; }
label { color: var(--muted); user-select: none; }
main { padding: 12px 20px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 10px; border-bottom: 1px solid var(--line); }
th { font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tag { display: inline-block; margin: 1px 4px 1px 0; padding: 0 6px; border: 1px solid var(--line);
  border-radius: 10px; font-size: 12px; white-space: nowrap; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); }
.muted { color: var(--muted); } .small { font-size: 12px; }
#error { display: none; margin: 0 0 12px; padding: 8px 12px; border: 1px solid var(--bad);
  border-radius: 6px; color: var(--bad); }
#empty { display: none; padding: 24px 0; color: var(--muted); }
`;

const SCRIPT = `
"use strict";
const RPC = "pushprox.v1.RegistryService/ListClients";
const params = new URLSearchParams(location.search);
const refreshMs = Math.max(1000, Number(params.get("refresh") || 5) * 1000);
const $ = (id) => document.getElementById(id);
const filter = $("filter");
filter.value = params.get("filter") || "";
let clients = [];
let timer = 0;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s ago";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m ago";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h ago";
}

function searchText(c) {
  const labels = Object.entries(c.labels || {}).map(([k, v]) => k + "=" + v);
  return [c.fqdn, c.version, c.protocol, ...(c.modules || []), ...labels, ...(c.proxies || []),
    c.connected ? "connected" : "disconnected", String(c.lastScrapeStatus || "")]
    .join(" ").toLowerCase();
}

function render() {
  const words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
  const shown = clients.filter((c) => {
    const text = searchText(c);
    return words.every((w) => text.includes(w));
  });
  const body = $("rows");
  body.replaceChildren();
  for (const c of shown) {
    const tr = el("tr");
    tr.dataset.fqdn = c.fqdn;
    const fqdn = el("td");
    fqdn.append(el("strong", c.fqdn));
    const about = [c.version, c.protocol].filter(Boolean).join(" · ");
    if (about) fqdn.append(el("div", about, "muted small"));
    tr.append(fqdn);
    const labels = el("td");
    for (const [k, v] of Object.entries(c.labels || {}).sort()) labels.append(el("span", k + "=" + v, "tag"));
    tr.append(labels);
    const modules = el("td");
    for (const m of c.modules || []) modules.append(el("span", m, "tag"));
    tr.append(modules);
    const since = el("td");
    since.append(el("span", c.connected ? "connected" : "disconnected", c.connected ? "ok" : "bad"));
    since.append(el("div", ago(c.connectedSince), "muted small"));
    if (c.connectedSince) since.title = c.connectedSince;
    tr.append(since);
    const last = el("td");
    if (c.lastScrape) {
      last.append(el("div", ago(c.lastScrape)));
      last.title = c.lastScrape;
    } else last.append(el("span", "never", "muted"));
    if (c.lastScrapeStatus) {
      const status = c.lastScrapeStatus;
      const line = el("div", "HTTP " + status + (c.lastScrapeDurationMs !== undefined ? " in " + (c.lastScrapeDurationMs / 1000).toFixed(3) + "s" : ""),
        status < 300 ? "ok small" : status < 500 ? "warn small" : "bad small");
      last.append(line);
    }
    if (c.lastScrapeError) last.append(el("div", c.lastScrapeError, "bad small"));
    tr.append(last);
    tr.append(el("td", c.inFlight || 0, "num"));
    const proxies = el("td", undefined, "small");
    for (const p of c.proxies || []) proxies.append(el("div", p));
    tr.append(proxies);
    body.append(tr);
  }
  const connected = clients.filter((c) => c.connected).length;
  $("summary").textContent = clients.length + " clients, " + connected + " connected" +
    (shown.length !== clients.length ? ", " + shown.length + " shown" : "");
  $("empty").style.display = shown.length === 0 ? "block" : "none";
  $("empty").textContent = clients.length === 0 ? "No clients are registered." : "No client matches the filter.";
}

async function refresh() {
  clearTimeout(timer);
  try {
    const response = await fetch(RPC, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1" },
      body: "{}",
      cache: "no-store",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((body && body.message) || ("HTTP " + response.status));
    clients = body.clients || [];
    $("error").style.display = "none";
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    render();
  } catch (error) {
    $("error").textContent = "Cannot load the clients: " + (error && error.message ? error.message : error);
    $("error").style.display = "block";
  }
  if ($("auto").checked) timer = setTimeout(refresh, refreshMs);
}

filter.addEventListener("input", () => {
  const url = new URL(location.href);
  if (filter.value) url.searchParams.set("filter", filter.value);
  else url.searchParams.delete("filter");
  history.replaceState(null, "", url);
  render();
});
$("auto").addEventListener("change", () => $("auto").checked ? refresh() : clearTimeout(timer));
refresh();
`;

const SCRIPT_HASH = createHash("sha256").update(SCRIPT).digest("base64");

/** Headers of the status page: no caching, and only its own script may run. */
export const STATUS_PAGE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "content-security-policy": [
    "default-src 'none'",
    `script-src 'sha256-${SCRIPT_HASH}'`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "img-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
};

/**
 * Renders the status page. The page itself carries no client data; its
 * script fetches it.
 *
 * @param version The proxy's version, shown in the header.
 * @returns The HTML document.
 */
export function statusPage(version: string): string {
  const safeVersion = version.replace(/[^0-9A-Za-z.+-]/g, "");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>PushProx proxy</title>
<style>${STYLE}</style>
</head>
<body>
<header>
  <h1>PushProx proxy <span class="muted small">${safeVersion}</span></h1>
  <input id="filter" type="search" placeholder="Filter: fqdn, label, module, proxy…" aria-label="Filter clients" autofocus>
  <label><input id="auto" type="checkbox" checked> auto-refresh</label>
  <span id="summary"></span>
  <span id="updated"></span>
</header>
<main>
  <div id="error" role="alert"></div>
  <table>
    <thead><tr>
      <th>FQDN</th><th>Labels</th><th>Modules</th><th>Connection</th><th>Last scrape</th>
      <th>In flight</th><th>Proxies (client's view)</th>
    </tr></thead>
    <tbody id="rows"></tbody>
  </table>
  <div id="empty"></div>
  <p class="muted small">Service discovery: <a href="clients">/clients</a> · metrics: <a href="metrics">/metrics</a> · API: <code>pushprox.v1.RegistryService/ListClients</code></p>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
