import assert from "node:assert/strict";
import { detectExpositionFormat } from "./exposition_format.ts";

Deno.test("detectExpositionFormat() defaults to text", () => {
  assert.equal(detectExpositionFormat(undefined), "text");
  assert.equal(detectExpositionFormat(null), "text");
  assert.equal(detectExpositionFormat(""), "text");
  assert.equal(detectExpositionFormat("text/plain"), "text");
  assert.equal(
    detectExpositionFormat("text/plain; version=0.0.4; charset=utf-8"),
    "text",
  );
  assert.equal(detectExpositionFormat("text/html"), "text");
});

Deno.test("detectExpositionFormat() recognises OpenMetrics", () => {
  assert.equal(
    detectExpositionFormat(
      "application/openmetrics-text; version=1.0.0; charset=utf-8",
    ),
    "openmetrics",
  );
  assert.equal(
    detectExpositionFormat("Application/OpenMetrics-Text"),
    "openmetrics",
  );
});

Deno.test("detectExpositionFormat() recognises delimited protobuf only", () => {
  assert.equal(
    detectExpositionFormat(
      "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
    ),
    "protobuf",
  );
  assert.equal(
    detectExpositionFormat(
      'application/vnd.google.protobuf;proto="io.prometheus.client.MetricFamily";encoding="delimited"',
    ),
    "protobuf",
  );
  assert.equal(
    detectExpositionFormat(
      "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text",
    ),
    "text",
  );
  assert.equal(
    detectExpositionFormat(
      "application/vnd.google.protobuf; proto=other.Message; encoding=delimited",
    ),
    "text",
  );
});
