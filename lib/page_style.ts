/**
 * The look shared by the proxy's status page and the client's module list:
 * one stylesheet (light and dark, responsive), the HTML shell, escaping, and
 * the security headers. Pages are self-contained: inline CSS, at most their
 * own inline script, allowed by its hash in the Content-Security-Policy.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** The stylesheet of both pages. */
export const PAGE_STYLE: string = `
:root { color-scheme: light dark; --fg: #1f2328; --muted: #656d76; --line: #d0d7de;
  --bg: #ffffff; --head: #f6f8fa; --card: #f6f8fa; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700;
  --accent: #0969da; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #8d96a0; --line: #30363d;
  --bg: #0d1117; --head: #161b22; --card: #161b22; --ok: #3fb950; --bad: #f85149; --warn: #d29922;
  --accent: #58a6ff; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
header { display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: center; padding: 12px 20px;
  border-bottom: 1px solid var(--line); background: var(--head); }
h1 { font-size: 18px; margin: 0 12px 0 0; }
h2 { font-size: 15px; margin: 16px 0 8px; }
main { padding: 12px 20px; }
input[type=search] { flex: 1 1 220px; max-width: 420px; padding: 6px 10px; font: inherit;
  color: inherit; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; }
label { color: var(--muted); user-select: none; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 10px; border-bottom: 1px solid var(--line);
  overflow-wrap: break-word; }
.anywhere { overflow-wrap: anywhere; } .nowrap { white-space: nowrap; }
th { font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.tag { display: inline-block; margin: 1px 4px 1px 0; padding: 0 6px; border: 1px solid var(--line);
  border-radius: 10px; font-size: 12px; overflow-wrap: anywhere; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); }
.muted { color: var(--muted); } .small { font-size: 12px; } code { font-size: 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 12px;
  margin: 0 0 16px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: var(--card); }
.card h2 { margin: 0; font-size: 13px; font-weight: 600; color: var(--muted); }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card svg { display: block; width: 100%; height: 56px; margin-top: 4px; }
.axis { display: flex; justify-content: space-between; font-size: 11px; color: var(--muted); }
svg .bar { fill: var(--accent); } svg .bar.ok { fill: var(--ok); }
svg .bar.fail { fill: var(--bad); } svg .bar.warn { fill: var(--warn); }
svg .bar.busy { fill: var(--warn); } svg .base { stroke: var(--line); stroke-width: 1; }
svg.spark { display: block; width: 150px; height: 26px; margin: 2px 0; }
.dot { display: inline-block; width: 8px; height: 8px; border-radius: 50%; margin-right: 6px;
  background: var(--muted); } .dot.live { background: var(--ok); } .dot.poll { background: var(--warn); }
.alert { margin: 0 0 12px; padding: 8px 12px; border: 1px solid var(--bad); border-radius: 6px;
  color: var(--bad); }
.empty { padding: 24px 0; color: var(--muted); }
@media (max-width: 900px) {
  main, header { padding-left: 10px; padding-right: 10px; }
  table.stack thead { display: none; }
  table.stack tr { display: grid; grid-template-columns: 1fr 1fr; gap: 2px 12px; padding: 8px 0;
    border-bottom: 1px solid var(--line); }
  table.stack td { border: 0; padding: 2px 0; }
  table.stack td.wide { grid-column: 1 / -1; }
  table.stack td.num { text-align: left; }
  table.stack td[data-label]::before { content: attr(data-label); display: block; font-size: 11px;
    color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
}
`;

/**
 * Escapes text for HTML element content and quoted attribute values.
 *
 * @param text Any text.
 * @returns The text with `&<>"'` escaped.
 */
export function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}

/** The SHA-256 of an inline script, as CSP's `script-src` wants it. */
function scriptSource(script: string): string {
  return `'sha256-${createHash("sha256").update(script).digest("base64")}'`;
}

/**
 * The headers of a page: no caching, no framing, and a Content-Security-Policy
 * that lets only the page's own inline script run (none when there is none)
 * and lets it fetch only from the page's origin.
 *
 * @param script The page's inline script, exactly as embedded; omit for none.
 * @returns The headers.
 */
export function pageHeaders(script?: string): Record<string, string> {
  return {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": [
      "default-src 'none'",
      `script-src ${script === undefined ? "'none'" : scriptSource(script)}`,
      "style-src 'unsafe-inline'",
      `connect-src ${script === undefined ? "'none'" : "'self'"}`,
      "img-src 'none'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join("; "),
  };
}

/** Parts of a page for {@linkcode pageDocument}. */
export interface PageParts {
  /** The document title (text). */
  title: string;
  /** The header's contents (HTML). */
  header: string;
  /** The main part (HTML). */
  main: string;
  /** The inline script, if any (the same text given to {@linkcode pageHeaders}). */
  script?: string;
}

/**
 * Builds a page in the shared look.
 *
 * @param parts Title, header, main part and script.
 * @returns The HTML document.
 */
export function pageDocument(parts: PageParts): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(parts.title)}</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
<header>
${parts.header}
</header>
<main>
${parts.main}
</main>
${parts.script === undefined ? "" : `<script>${parts.script}</script>\n`}</body>
</html>
`;
}
