/**
 * The proxy's status page for people (`GET /`): one self-contained HTML
 * document (the shared look of lib/page_style.ts, one inline script, no
 * external assets). It follows `RegistryService/WatchClients` (Connect's
 * streaming JSON encoding over fetch) and falls back to polling
 * `ListClients` when the stream is unavailable. It draws the proxy's scrape
 * rate, errors and scrapes in flight over the last minutes, and each
 * client's recent scrapes, as inline SVG. Every value a client announced is
 * put into the page with `textContent`, never parsed as HTML, and the
 * Content-Security-Policy allows only this one inline script.
 *
 * @module
 */

import { escapeHtml, pageDocument, pageHeaders } from "../../lib/page_style.ts";

const SCRIPT = `
"use strict";
const SERVICE = "pushprox.v1.RegistryService/";
const SVG = "http://www.w3.org/2000/svg";
const WINDOW_BUCKETS = 90;
const params = new URLSearchParams(location.search);
const refreshMs = Math.max(1000, Number(params.get("refresh") || 5) * 1000);
const useWatch = params.get("watch") !== "0";
const $ = (id) => document.getElementById(id);
const filter = $("filter");
filter.value = params.get("filter") || "";
const clients = new Map();
let stats = null;
let mode = "";
let modeNote = "";
let timer = 0;
let renderTimer = 0;
let watchAbort = null;
let watchRetryAt = 0;
let watchBackoff = 2000;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function span(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}

function since(iso) {
  return iso ? (Date.now() - Date.parse(iso)) / 1000 : 0;
}

/** A node whose text says how long ago (or for how long) and keeps itself current. */
function agoNode(tag, iso, prefix, suffix, className) {
  const node = el(tag, "", className);
  node.dataset.since = iso;
  node.dataset.prefix = prefix;
  node.dataset.suffix = suffix;
  node.textContent = prefix + span(since(iso)) + suffix;
  node.title = new Date(Date.parse(iso)).toLocaleString();
  return node;
}

function tick() {
  for (const node of document.querySelectorAll("[data-since]")) {
    node.textContent = node.dataset.prefix + span(since(node.dataset.since)) + node.dataset.suffix;
  }
}

function about(c) {
  const parts = [];
  if (c.version) parts.push("v" + String(c.version).replace(/^v/, ""));
  if (c.protocol === "connect") parts.push("Connect protocol");
  else if (c.protocol === "legacy") parts.push("legacy PushProx client");
  else if (c.protocol) parts.push(c.protocol + " protocol");
  return parts.join(", ");
}

function failed(outcome) {
  return (outcome.status || 0) >= 400 || Boolean(outcome.error);
}

function seconds(ms) {
  return ((ms || 0) / 1000).toFixed(3) + "s";
}

function searchText(c) {
  const labels = Object.entries(c.labels || {}).map(([k, v]) => k + "=" + v);
  return [c.fqdn, c.version, c.protocol, about(c), c.peerAddress, ...(c.modules || []), ...labels,
    ...(c.proxies || []), c.connected ? "connected" : "disconnected", String(c.lastScrapeStatus || "")]
    .join(" ").toLowerCase();
}

/** The last scrapes as bars: height is the duration, red when it failed. */
function sparkline(outcomes) {
  const width = 150, height = 26, slots = 30, gap = 1;
  const w = width / slots;
  const svg = svgEl("svg", { class: "spark", viewBox: "0 0 " + width + " " + height,
    role: "img", "aria-label": "last " + outcomes.length + " scrapes" });
  svg.append(svgEl("line", { class: "base", x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 }));
  const max = Math.max(1, ...outcomes.map((o) => o.durationMs || 0));
  outcomes.slice(-slots).forEach((o, i) => {
    const h = failed(o) ? height : Math.max(2, Math.round((o.durationMs || 0) / max * (height - 2)));
    const bar = svgEl("rect", { class: "bar " + (failed(o) ? "fail" : "ok"),
      x: (slots - Math.min(slots, outcomes.length) + i) * w, y: height - h, width: w - gap, height: h });
    const when = o.time ? new Date(Date.parse(o.time)).toLocaleTimeString() : "";
    const title = svgEl("title");
    title.textContent = when + " HTTP " + (o.status || 0) + " in " + seconds(o.durationMs) + ", " +
      Number(o.bytes || 0) + " bytes" + (o.error ? ": " + o.error : "");
    bar.append(title);
    svg.append(bar);
  });
  return svg;
}

/** One proxy-wide chart: a bar per bucket. */
function chart(id, values, labels, classOf, unit, digits, note) {
  const width = 360, height = 56;
  const svg = $(id);
  svg.replaceChildren();
  svg.setAttribute("viewBox", "0 0 " + width + " " + height);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.append(svgEl("line", { class: "base", x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 }));
  // The whole window, newest on the right, even while it is still filling.
  const slots = Math.max(values.length, WINDOW_BUCKETS);
  const w = width / slots;
  const max = Math.max(...values, 0) || 1;
  values.forEach((v, i) => {
    const h = v > 0 ? Math.max(1.5, v / max * (height - 2)) : 0;
    const x = (slots - values.length + i) * w;
    const bar = svgEl("rect", { class: "bar " + classOf(v), x, y: height - h,
      width: Math.max(w - 0.6, 0.6), height: h });
    const title = svgEl("title");
    title.textContent = labels[i] + ": " + v.toFixed(digits) + unit + note;
    bar.append(title);
    svg.append(bar);
  });
}

function renderStats() {
  if (!stats) return;
  const buckets = stats.buckets || [];
  const seconds = stats.bucketSeconds || 10;
  const labels = buckets.map((b) => new Date(Date.parse(b.start)).toLocaleTimeString());
  const rate = buckets.map((b) => (b.scrapes || 0) / seconds);
  const errors = buckets.map((b) => (b.errors || 0) / seconds);
  const busy = buckets.map((b) => b.maxInFlight || 0);
  chart("chart-rate", rate, labels, () => "", "/s", 2, "");
  chart("chart-errors", errors, labels, (v) => v > 0 ? "fail" : "", "/s", 2, "");
  chart("chart-inflight", busy, labels, () => "busy", "", 0, " at most");
  // The figures: counts over the last minute, the current bucket included.
  const recent = buckets.slice(-Math.max(1, Math.round(60 / seconds)));
  const scrapes = recent.reduce((n, b) => n + (b.scrapes || 0), 0);
  const errs = recent.reduce((n, b) => n + (b.errors || 0), 0);
  const figure = (id, value, note) => {
    $(id).replaceChildren(el("span", value), " ", el("span", note, "muted small"));
  };
  figure("rate", String(scrapes), "in the last minute");
  figure("errors", String(errs) + (scrapes > 0 ? " (" + Math.round(errs / scrapes * 100) + "%)" : ""),
    "in the last minute");
  figure("inflight", String(stats.inFlight || 0), "now");
  const minutes = Math.round(Math.max(buckets.length, WINDOW_BUCKETS) * seconds / 60);
  for (const node of document.querySelectorAll(".axis .from")) node.textContent = "-" + minutes + " min";
}

function render() {
  clearTimeout(renderTimer);
  renderTimer = 0;
  const all = [...clients.values()].sort((a, b) => a.fqdn < b.fqdn ? -1 : a.fqdn > b.fqdn ? 1 : 0);
  const words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
  const shown = all.filter((c) => {
    const text = searchText(c);
    return words.every((w) => text.includes(w));
  });
  const body = $("rows");
  body.replaceChildren();
  for (const c of shown) {
    const tr = el("tr");
    tr.dataset.fqdn = c.fqdn;
    const cell = (label, className) => {
      const td = el("td", undefined, className);
      td.dataset.label = label;
      tr.append(td);
      return td;
    };
    const name = cell("Client", "wide");
    name.append(el("strong", c.fqdn));
    const kind = about(c);
    if (kind) name.append(el("div", kind, "muted small about"));
    if (c.peerAddress) name.append(el("div", "from " + c.peerAddress, "muted small peer"));
    const labels = cell("Labels");
    for (const [k, v] of Object.entries(c.labels || {}).sort()) labels.append(el("span", k + "=" + v, "tag"));
    const modules = cell("Modules");
    for (const m of c.modules || []) modules.append(el("span", m, "tag"));
    const conn = cell("Connection");
    conn.append(el("span", c.connected ? "connected" : "disconnected", c.connected ? "ok nowrap" : "bad nowrap"));
    if (c.connected && c.connectedSince) {
      conn.append(agoNode("div", c.connectedSince, "for ", "", "muted small"));
    } else if (!c.connected && (c.disconnectedAt || c.connectedSince)) {
      conn.append(agoNode("div", c.disconnectedAt || c.connectedSince, "", " ago", "muted small"));
    }
    const last = cell("Recent scrapes", "scrapes");
    const outcomes = c.recentScrapes || [];
    if (outcomes.length) last.append(sparkline(outcomes));
    if (c.lastScrapeStatus) {
      const status = c.lastScrapeStatus;
      last.append(el("div", "HTTP " + status + " in " + seconds(c.lastScrapeDurationMs),
        status < 300 ? "ok small" : status < 500 ? "warn small" : "bad small"));
    }
    if (c.lastScrape) last.append(agoNode("div", c.lastScrape, "sent ", " ago", "muted small"));
    else last.append(el("span", "never scraped", "muted small"));
    if (c.lastScrapeError) last.append(el("div", c.lastScrapeError, "bad small"));
    cell("In flight", "num").append(String(c.inFlight || 0));
    const proxies = cell("Proxies (client's view)", "small wide anywhere");
    for (const p of c.proxies || []) proxies.append(el("div", p));
    body.append(tr);
  }
  const connected = all.filter((c) => c.connected).length;
  $("summary").textContent = all.length + " clients, " + connected + " connected" +
    (shown.length !== all.length ? ", " + shown.length + " shown" : "");
  $("empty").style.display = shown.length === 0 ? "block" : "none";
  $("empty").textContent = all.length === 0 ? "No clients are registered." : "No client matches the filter.";
  renderStats();
  const dot = $("mode-dot");
  dot.className = "dot " + (mode === "watch" ? "live" : mode === "poll" ? "poll" : "");
  $("updated").textContent = (mode === "watch" ? "live" : mode === "poll" ? "polling every " +
    refreshMs / 1000 + "s" : "paused") + (modeNote ? " (" + modeNote + ")" : "");
}

function scheduleRender() {
  if (!renderTimer) renderTimer = setTimeout(render, 250);
}

function showError(message) {
  $("error").textContent = message;
  $("error").style.display = message ? "block" : "none";
}

function key(fqdn) {
  return String(fqdn).toLowerCase();
}

function snapshot(list) {
  clients.clear();
  for (const c of list.clients || []) clients.set(key(c.fqdn), c);
  if (list.stats) stats = list.stats;
}

function apply(event) {
  if (event.snapshot) return snapshot(event.snapshot);
  if (event.connected) return clients.set(key(event.connected.fqdn), event.connected);
  if (event.stats) return stats = event.stats;
  if (event.forgotten) return clients.delete(key(event.forgotten.fqdn));
  if (event.disconnected) {
    const c = clients.get(key(event.disconnected.fqdn));
    if (c) {
      c.connected = false;
      c.disconnectedAt = event.disconnected.disconnectedAt;
    }
    return;
  }
  if (event.scraped) {
    const c = clients.get(key(event.scraped.fqdn));
    const o = event.scraped.outcome || {};
    if (!c) return;
    c.recentScrapes = [...(c.recentScrapes || []), o].slice(-30);
    c.lastScrapeStatus = o.status || 0;
    c.lastScrapeError = o.error || "";
    c.lastScrapeDurationMs = o.durationMs || 0;
    c.inFlight = event.scraped.inFlight || 0;
    if (!c.lastScrape || Date.parse(c.lastScrape) < Date.parse(o.time) - (o.durationMs || 0)) {
      c.lastScrape = new Date(Date.parse(o.time) - (o.durationMs || 0)).toISOString();
    }
  }
}

async function poll() {
  clearTimeout(timer);
  try {
    const response = await fetch(SERVICE + "ListClients", {
      method: "POST",
      headers: { "content-type": "application/json", "connect-protocol-version": "1" },
      body: "{}",
      cache: "no-store",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((body && body.message) || ("HTTP " + response.status));
    snapshot(body);
    showError("");
    render();
  } catch (error) {
    showError("Cannot load the clients: " + (error && error.message ? error.message : error));
  }
  if (!$("auto").checked) return;
  if (useWatch && Date.now() >= watchRetryAt) watch();
  else timer = setTimeout(poll, refreshMs);
}

/** Follows WatchClients: Connect's streaming protocol, JSON messages in 5-byte envelopes. */
async function watch() {
  clearTimeout(timer);
  const abort = new AbortController();
  watchAbort = abort;
  const request = new TextEncoder().encode("{}");
  const envelope = new Uint8Array(5 + request.length);
  new DataView(envelope.buffer).setUint32(1, request.length);
  envelope.set(request, 5);
  let failure = "";
  try {
    const response = await fetch(SERVICE + "WatchClients", {
      method: "POST",
      headers: { "content-type": "application/connect+json", "connect-protocol-version": "1" },
      body: envelope,
      cache: "no-store",
      signal: abort.signal,
    });
    if (!response.ok || !response.body) {
      const body = await response.json().catch(() => ({}));
      throw new Error((body && body.message) || ("HTTP " + response.status));
    }
    const reader = response.body.getReader();
    let buffer = new Uint8Array(0);
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const joined = new Uint8Array(buffer.length + value.length);
      joined.set(buffer);
      joined.set(value, buffer.length);
      buffer = joined;
      while (buffer.length >= 5) {
        const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(1);
        if (buffer.length < 5 + length) break;
        const flags = buffer[0];
        const message = JSON.parse(decoder.decode(buffer.subarray(5, 5 + length)));
        buffer = buffer.slice(5 + length);
        if (flags & 2) {
          if (message.error) throw new Error(message.error.message || message.error.code);
          continue;
        }
        apply(message);
        if (mode !== "watch") {
          mode = "watch";
          modeNote = "";
          watchBackoff = 2000;
          showError("");
        }
        if (message.snapshot) render();
        else scheduleRender();
      }
    }
    failure = "the stream ended";
  } catch (error) {
    if (abort.signal.aborted) return;
    failure = error && error.message ? error.message : String(error);
  }
  if (watchAbort !== abort || !$("auto").checked) return;
  // Fall back to polling; try the stream again later.
  mode = "poll";
  modeNote = "WatchClients: " + failure;
  watchRetryAt = Date.now() + watchBackoff;
  watchBackoff = Math.min(watchBackoff * 2, 60000);
  poll();
}

function start() {
  if (useWatch) watch();
  else {
    mode = "poll";
    poll();
  }
}

filter.addEventListener("input", () => {
  const url = new URL(location.href);
  if (filter.value) url.searchParams.set("filter", filter.value);
  else url.searchParams.delete("filter");
  history.replaceState(null, "", url);
  render();
});
$("auto").addEventListener("change", () => {
  if ($("auto").checked) return start();
  clearTimeout(timer);
  watchAbort?.abort();
  watchAbort = null;
  mode = "";
  render();
});
setInterval(tick, 1000);
start();
`;

/** Headers of the status page: no caching, and only its own script may run. */
export const STATUS_PAGE_HEADERS: Readonly<Record<string, string>> = pageHeaders(SCRIPT);

function chartCard(id: string, title: string, valueId: string): string {
  return `<div class="card"><h2>${title}</h2><div class="value" id="${valueId}">–</div>
    <svg id="${id}" role="img" aria-label="${title} over the last minutes"></svg>
    <div class="axis"><span class="from">-15 min</span><span>now</span></div></div>`;
}

/**
 * Renders the status page. The page itself carries no client data; its
 * script fetches it.
 *
 * @param version The proxy's version, shown in the header.
 * @returns The HTML document.
 */
export function statusPage(version: string): string {
  const safeVersion = escapeHtml(version.replace(/[^0-9A-Za-z.+-]/g, ""));
  return pageDocument({
    title: "PushProx proxy",
    header: `  <h1>PushProx proxy <span class="muted small">v${safeVersion}</span></h1>
  <input id="filter" type="search" placeholder="Filter: fqdn, label, module, proxy…" aria-label="Filter clients" autofocus>
  <label><input id="auto" type="checkbox" checked> live updates</label>
  <span id="summary"></span>
  <span class="muted"><span id="mode-dot" class="dot"></span><span id="updated"></span></span>`,
    main: `  <div id="error" class="alert" role="alert" style="display:none"></div>
  <section class="cards" id="charts" aria-label="The proxy's scrapes">
    ${chartCard("chart-rate", "Scrape rate", "rate")}
    ${chartCard("chart-errors", "Error rate", "errors")}
    ${chartCard("chart-inflight", "Scrapes in flight", "inflight")}
  </section>
  <table class="stack">
    <thead><tr>
      <th>Client</th><th>Labels</th><th>Modules</th><th>Connection</th><th>Recent scrapes</th>
      <th>In flight</th><th>Proxies (client's view)</th>
    </tr></thead>
    <tbody id="rows"></tbody>
  </table>
  <div id="empty" class="empty" style="display:none"></div>
  <p class="muted small">Service discovery: <a href="clients">/clients</a> · metrics: <a href="metrics">/metrics</a> · API: <code>pushprox.v1.RegistryService/ListClients</code>, <code>WatchClients</code></p>`,
    script: SCRIPT,
  });
}
