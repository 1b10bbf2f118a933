import assert from "node:assert/strict";
import { parseProxyUrl } from "./proxy_transport.ts";

Deno.test("parseProxyUrl() normalizes the base URL and keeps path prefixes", () => {
  assert.deepEqual(parseProxyUrl("http://proxy:8080/"), {
    baseUrl: "http://proxy:8080",
  });
  assert.deepEqual(parseProxyUrl("https://p.example.com/pushprox//"), {
    baseUrl: "https://p.example.com/pushprox",
  });
});

Deno.test("parseProxyUrl() turns userinfo into basic auth", () => {
  assert.deepEqual(parseProxyUrl("http://al%40ice:s3cr%3At@proxy:8080"), {
    baseUrl: "http://proxy:8080",
    authorization: "Basic " + btoa("al@ice:s3cr:t"),
  });
});

Deno.test("parseProxyUrl() rejects non-http URLs", () => {
  assert.throws(() => parseProxyUrl("proxy:8080"), /scheme must be http/);
  assert.throws(() => parseProxyUrl("not a url"), /not a URL/);
});
