/**
 * Picks the exposition format of a scrape body from its Content-Type.
 *
 * @module
 */

/**
 * The exposition formats the verifier understands.
 *
 * - `text`: Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
 * - `openmetrics`: OpenMetrics text 1.0 (`application/openmetrics-text`).
 * - `protobuf`: varint-length-delimited `io.prometheus.client.MetricFamily`
 *   messages.
 */
export type ExpositionFormat = "text" | "openmetrics" | "protobuf";

const PROTOBUF_MEDIA_TYPE = "application/vnd.google.protobuf";
const METRIC_FAMILY_PROTO = "io.prometheus.client.MetricFamily";

/**
 * Chooses the exposition format from a Content-Type header value.
 *
 * Rules, in order:
 * 1. `application/vnd.google.protobuf` with
 *    `proto=io.prometheus.client.MetricFamily` and `encoding=delimited`
 *    → `protobuf`.
 * 2. `application/openmetrics-text` (any version) → `openmetrics`.
 * 3. Anything else, including a missing header, `text/plain` with or without
 *    `version=0.0.4`, and unknown types → `text`. This is the fallback
 *    exporter_exporter and Prometheus 2 use, so a body in an unexpected
 *    format fails as text rather than being waved through.
 *
 * @param contentType The Content-Type header value, if any.
 * @returns The format to verify against.
 *
 * @example Selecting OpenMetrics
 * ```ts
 * import { detectExpositionFormat } from "./exposition_format.ts";
 *
 * const format = detectExpositionFormat(
 *   "application/openmetrics-text; version=1.0.0; charset=utf-8",
 * );
 * console.assert(format === "openmetrics");
 * ```
 */
export function detectExpositionFormat(
  contentType: string | null | undefined,
): ExpositionFormat {
  if (contentType === null || contentType === undefined) return "text";
  const parts = contentType.split(";");
  const mediaType = parts[0]!.trim().toLowerCase();
  if (mediaType === "application/openmetrics-text") return "openmetrics";
  if (mediaType !== PROTOBUF_MEDIA_TYPE) return "text";
  let proto: string | undefined;
  let encoding: string | undefined;
  for (const part of parts.slice(1)) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim().toLowerCase();
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1);
    }
    if (key === "proto") proto = value;
    else if (key === "encoding") encoding = value.toLowerCase();
  }
  return proto === METRIC_FAMILY_PROTO && encoding === "delimited" ? "protobuf" : "text";
}
