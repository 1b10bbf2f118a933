import assert from "node:assert/strict";
import { proxyForUrl } from "./env_proxy.ts";

const proxyOf = (target: string, env: Record<string, string>) =>
  proxyForUrl(new URL(target), env)?.toString() ?? null;

Deno.test("proxyForUrl() picks the variable for the URL's scheme, lower case first", () => {
  const env = { HTTPS_PROXY: "http://upper:3128", https_proxy: "http://lower:3128" };
  assert.equal(proxyOf("https://pushprox:8080/", env), "http://lower:3128/");
  assert.equal(proxyOf("http://pushprox:8080/", env), null);
  assert.equal(
    proxyOf("http://pushprox:8080/", { HTTP_PROXY: "squid:3128" }),
    "http://squid:3128/",
  );
  assert.equal(proxyOf("https://pushprox/", {}), null);
});

Deno.test("proxyForUrl() honours NO_PROXY hosts, domains, ports, IPs and CIDR ranges", () => {
  const base = { http_proxy: "http://squid:3128" };
  const cases: [string, string, boolean][] = [
    ["http://pushprox.internal:8080/", "internal", false],
    ["http://pushprox.internal:8080/", ".internal", false],
    ["http://pushprox.internal:8080/", "*.internal", false],
    ["http://pushprox.internal:8080/", "pushprox.internal:8080", false],
    ["http://pushprox.internal:8080/", "pushprox.internal:9090", true],
    ["http://xinternal:8080/", "internal", true],
    ["http://10.1.2.3:8080/", "10.0.0.0/8", false],
    ["http://11.1.2.3:8080/", "10.0.0.0/8", true],
    ["http://10.1.2.3:8080/", "10.1.2.3", false],
    ["http://[fd00::5]:8080/", "fd00::/8", false],
    ["http://[fe80::5]:8080/", "fd00::/8", true],
    ["http://anything:8080/", "*", false],
    ["http://pushprox:8080/", "a, b ,pushprox", false],
  ];
  for (const [target, noProxy, proxied] of cases) {
    assert.equal(
      proxyOf(target, { ...base, NO_PROXY: noProxy }) !== null,
      proxied,
      `${target} with NO_PROXY=${noProxy}`,
    );
  }
});

Deno.test("proxyForUrl() refuses a proxy that is not an http(s) URL", () => {
  assert.throws(
    () => proxyOf("http://p/", { http_proxy: "socks5://s:1080" }),
    /http_proxy="socks5:\/\/s:1080": only http/,
  );
});
