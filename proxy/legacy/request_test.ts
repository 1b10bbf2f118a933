import assert from "node:assert/strict";
import { canonicalHeaderName, formatLegacyScrape } from "./request.ts";

Deno.test("formatLegacyScrape() writes Go's WriteProxy form: request line, Host, User-Agent, sorted fields", () => {
  const text = formatLegacyScrape({
    id: "0b6a7c1e-1b1f-4c59-9d59-8f0b8f0e6a11",
    method: "GET",
    url: "http://node-a.example:9100/metrics?module=x&target=y",
    headers: [
      { name: "accept", value: "application/openmetrics-text;version=1.0.0;q=0.9,*/*;q=0.1" },
      { name: "user-agent", value: "Prometheus/2.53.0" },
      { name: "x-prometheus-scrape-timeout-seconds", value: "10" },
      { name: "accept-encoding", value: "gzip" },
      { name: "authorization", value: "Bearer target-token" },
    ],
    timeoutMs: 9_873,
  });
  assert.equal(
    text,
    "GET http://node-a.example:9100/metrics?module=x&target=y HTTP/1.1\r\n" +
      "Host: node-a.example:9100\r\n" +
      "User-Agent: Prometheus/2.53.0\r\n" +
      "Accept: application/openmetrics-text;version=1.0.0;q=0.9,*/*;q=0.1\r\n" +
      "Accept-Encoding: gzip\r\n" +
      "Authorization: Bearer target-token\r\n" +
      "Id: 0b6a7c1e-1b1f-4c59-9d59-8f0b8f0e6a11\r\n" +
      "X-Prometheus-Scrape-Timeout-Seconds: 9.873\r\n" +
      "\r\n",
  );
});

Deno.test("formatLegacyScrape() uses Go's User-Agent when none was sent and keeps multi-valued fields in order", () => {
  const text = formatLegacyScrape({
    id: "7",
    method: "HEAD",
    url: "http://10.0.0.5:8080/",
    headers: [
      { name: "x-b", value: "2" },
      { name: "x-a", value: " first " },
      { name: "x-a", value: "line\r\nbreak" },
    ],
    timeoutMs: 500,
  });
  assert.equal(
    text,
    "HEAD http://10.0.0.5:8080/ HTTP/1.1\r\n" +
      "Host: 10.0.0.5:8080\r\n" +
      "User-Agent: Go-http-client/1.1\r\n" +
      "Id: 7\r\n" +
      "X-A: first\r\n" +
      "X-A: line  break\r\n" +
      "X-B: 2\r\n" +
      "X-Prometheus-Scrape-Timeout-Seconds: 0.5\r\n" +
      "\r\n",
  );
});

Deno.test("formatLegacyScrape() replaces an Id sent by the scraper and drops framing fields", () => {
  const text = formatLegacyScrape({
    id: "ours",
    method: "GET",
    url: "http://[::1]:9100/metrics",
    headers: [
      { name: "Id", value: "theirs" },
      { name: "content-length", value: "0" },
      { name: "host", value: "elsewhere" },
      { name: "user-agent", value: "" },
    ],
    timeoutMs: 1,
  });
  assert.equal(
    text,
    "GET http://[::1]:9100/metrics HTTP/1.1\r\nHost: [::1]:9100\r\n" +
      "Id: ours\r\nX-Prometheus-Scrape-Timeout-Seconds: 0.001\r\n\r\n",
    "an empty User-Agent is not written, as in Go",
  );
});

Deno.test("canonicalHeaderName() matches Go's CanonicalMIMEHeaderKey", () => {
  assert.equal(
    canonicalHeaderName("x-prometheus-scrape-timeout-seconds"),
    "X-Prometheus-Scrape-Timeout-Seconds",
  );
  assert.equal(canonicalHeaderName("WWW-AUTHENTICATE"), "Www-Authenticate");
  assert.equal(canonicalHeaderName("id"), "Id");
  assert.equal(canonicalHeaderName("bad name"), "bad name");
});
