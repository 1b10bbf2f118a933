import assert from "node:assert/strict";
import bcrypt from "bcryptjs";
import {
  type BasicAuthVerifier,
  createBasicAuthVerifier,
  sha256Hex,
} from "../../lib/basic_auth.ts";
import type { PeerIdentity } from "../../lib/tls_server.ts";
import {
  createAuthenticator,
  defaultAuthConfig,
  fqdnPatternRegExp,
  parseAuthConfig,
  publicReason,
  registrationProblem,
} from "./auth.ts";

const users = new Map([
  ["prometheus", bcrypt.hashSync("scrape-pass", 4)],
  ["grafana", bcrypt.hashSync("read-pass", 4)],
]);
const NODE1 = "node1-token-0123456789abcdef";
const WEB = "web-token-0123456789abcdef";
const OLD = "old-token-0123456789abcdef";
const READER = "reader-token-0123456789abcdef";

const CONFIG = `
clients:
  certificates: true
  tokens:
    - name: node1
      sha256: ${sha256Hex(NODE1)}
      fqdns: [node1.example.com]
    - name: web
      sha256: ${sha256Hex(WEB)}
      fqdns: ["*.web.example.com", "10.0.0.*"]
    - name: old
      sha256: ${sha256Hex(OLD)}
      fqdns: ["**"]
      expires: 2020-01-01T00:00:00Z
scrapers:
  basic_auth_users: [prometheus]
  certificates: [prometheus.example.com]
readers:
  basic_auth_users: [prometheus, grafana]
  tokens:
    - sha256: ${sha256Hex(READER)}
`;

function peer(cn: string, sans: string[] = []): PeerIdentity {
  return {
    commonName: cn,
    dnsNames: sans,
    ipAddresses: [],
    otherNames: [],
    subject: `CN=${cn}`,
    issuer: "CN=ca",
  };
}
const basic = (user: string, password: string) => "Basic " + btoa(`${user}:${password}`);

Deno.test("fqdnPatternRegExp(): * stays within a label, ** crosses, case does not matter", () => {
  assert.ok(fqdnPatternRegExp("*.example.com").test("a.example.com"));
  assert.ok(!fqdnPatternRegExp("*.example.com").test("a.b.example.com"));
  assert.ok(fqdnPatternRegExp("**.example.com").test("a.b.example.com"));
  assert.ok(fqdnPatternRegExp("Node?.EXAMPLE.com").test("node1.example.com"));
  assert.ok(!fqdnPatternRegExp("node1.example.com").test("node1xexample.com"), "dots are literal");
});

Deno.test("authenticate(client): tokens bound to fqdn patterns, wrong, missing and expired", async () => {
  const auth = createAuthenticator(parseAuthConfig(CONFIG, "auth.yml", users), { users });
  const ok = await auth.authenticate("client", { authorization: `Bearer ${NODE1}`, peer: null });
  assert.ok(ok.ok);
  assert.equal(registrationProblem(ok.principal, "node1.example.com"), null);
  assert.equal(registrationProblem(ok.principal, "NODE1.example.com."), null);
  assert.match(registrationProblem(ok.principal, "node2.example.com")!, /may not register "node2/);

  const web = await auth.authenticate("client", { authorization: `Bearer ${WEB}`, peer: null });
  assert.ok(web.ok);
  assert.equal(registrationProblem(web.principal, "a.web.example.com"), null);
  assert.equal(registrationProblem(web.principal, "10.0.0.7"), null);
  assert.notEqual(registrationProblem(web.principal, "a.b.web.example.com"), null);
  assert.notEqual(ok.principal.credential, web.principal.credential);

  // Upstream clients send the token as the basic-auth password.
  const legacy = await auth.authenticate("client", {
    authorization: basic("x", NODE1),
    peer: null,
  });
  assert.ok(legacy.ok);
  assert.equal(legacy.principal.credential, ok.principal.credential);

  const wrong = await auth.authenticate("client", { authorization: "Bearer nope", peer: null });
  assert.deepEqual(wrong.ok ? null : wrong.kind, "invalid");
  const missing = await auth.authenticate("client", { peer: null });
  assert.equal(missing.ok ? null : missing.kind, "missing");
  const expired = await auth.authenticate("client", { authorization: `Bearer ${OLD}`, peer: null });
  assert.equal(expired.ok ? null : expired.kind, "expired");
  assert.match(expired.ok ? "" : expired.reason, /expired at 2020-01-01/);
});

Deno.test("authenticate(client): certificates must name the fqdn", async () => {
  const auth = createAuthenticator(parseAuthConfig(CONFIG, "auth.yml", users), { users });
  const result = await auth.authenticate("client", {
    peer: peer("node1.example.com", ["node1.example.com", "alias.example.com"]),
  });
  assert.ok(result.ok);
  assert.equal(registrationProblem(result.principal, "alias.example.com"), null);
  assert.match(
    registrationProblem(result.principal, "node2.example.com")!,
    /certificate is for node1\.example\.com/,
  );
  // A scraper's or reader's certificate is not accepted without a listed name.
  const other = await auth.authenticate("scraper", { peer: peer("node1.example.com") });
  assert.equal(other.ok ? null : other.kind, "forbidden");
});

Deno.test("authenticate(scraper): Proxy-Authorization only, users named for the role", async () => {
  const auth = createAuthenticator(parseAuthConfig(CONFIG, "auth.yml", users), { users });
  assert.ok(
    (await auth.authenticate("scraper", {
      proxyAuthorization: basic("prometheus", "scrape-pass"),
      peer: null,
    })).ok,
  );
  // The target's Authorization header is not the proxy's business.
  const wrongHeader = await auth.authenticate("scraper", {
    authorization: basic("prometheus", "scrape-pass"),
    peer: null,
  });
  assert.equal(wrongHeader.ok ? null : wrongHeader.kind, "missing");
  const wrongPass = await auth.authenticate("scraper", {
    proxyAuthorization: basic("prometheus", "nope"),
    peer: null,
  });
  assert.equal(wrongPass.ok ? null : wrongPass.kind, "invalid");
  const otherRole = await auth.authenticate("scraper", {
    proxyAuthorization: basic("grafana", "read-pass"),
    peer: null,
  });
  assert.equal(otherRole.ok ? null : otherRole.kind, "forbidden");
  assert.ok((await auth.authenticate("scraper", { peer: peer("prometheus.example.com") })).ok);
  const bearer = await auth.authenticate("scraper", {
    proxyAuthorization: `Bearer ${READER}`,
    peer: null,
  });
  assert.equal(bearer.ok ? null : bearer.kind, "forbidden");
});

Deno.test("authenticate(reader): basic or bearer in Authorization", async () => {
  const auth = createAuthenticator(parseAuthConfig(CONFIG, "auth.yml", users), { users });
  assert.ok(
    (await auth.authenticate("reader", {
      authorization: basic("grafana", "read-pass"),
      peer: null,
    })).ok,
  );
  assert.ok(
    (await auth.authenticate("reader", { authorization: `Bearer ${READER}`, peer: null })).ok,
  );
  const client = await auth.authenticate("reader", {
    authorization: `Bearer ${NODE1}`,
    peer: null,
  });
  assert.equal(client.ok ? null : client.kind, "invalid", "a client token is not a reader token");
  assert.equal(auth.openRoles().length, 0);
});

Deno.test("defaultAuthConfig(): open without users, every role needs a user with them", async () => {
  const open = createAuthenticator(defaultAuthConfig(new Map()), { users: new Map() });
  assert.deepEqual(open.openRoles(), ["client", "scraper", "reader"]);
  const result = await open.authenticate("client", { peer: null });
  assert.ok(result.ok && result.principal.credential === "anonymous");

  const closed = createAuthenticator(defaultAuthConfig(users), { users });
  assert.deepEqual(closed.openRoles(), []);
  assert.ok(
    (await closed.authenticate("scraper", {
      proxyAuthorization: basic("grafana", "read-pass"),
      peer: null,
    })).ok,
  );
  const none = await closed.authenticate("reader", { peer: null });
  assert.match(none.ok ? "" : none.reason, /Authorization: Basic/);
});

/** A real verifier that counts the checks it is asked for (cache hits included). */
function countingVerifier(): BasicAuthVerifier & { checks: number } {
  const inner = createBasicAuthVerifier();
  const counting = {
    checks: 0,
    isCached: inner.isCached,
    verify(...args: Parameters<BasicAuthVerifier["verify"]>) {
      counting.checks++;
      return inner.verify(...args);
    },
  };
  return counting;
}

// Issue 10 item 6: about 90 wrong passwords a second from one source kept bcrypt busy.
Deno.test("issue 10: a source past its budget of failed checks gets 'throttled' without a check; cached credentials still pass", async () => {
  let t = 0;
  const verifier = countingVerifier();
  const auth = createAuthenticator(parseAuthConfig(CONFIG, "auth.yml", users), {
    users,
    verifier,
    now: () => t,
    maxFailuresPerSource: 3,
    failureWindowMs: 60_000,
  });
  const scrape = (password: string, source: string) =>
    auth.authenticate("scraper", {
      proxyAuthorization: basic("prometheus", password),
      peer: null,
      source,
    });
  assert.ok((await scrape("scrape-pass", "10.6.6.6")).ok, "cached from now on");
  for (let i = 0; i < 3; i++) {
    const wrong = await scrape(`guess${i}`, "10.6.6.6");
    assert.equal(wrong.ok ? null : wrong.kind, "invalid");
  }
  const checks = verifier.checks;
  for (let i = 0; i < 90; i++) {
    const throttled = await scrape(`guess-more${i}`, "10.6.6.6");
    assert.ok(!throttled.ok && throttled.kind === "throttled");
    assert.equal(throttled.retryAfterMs, 20_000);
  }
  assert.equal(verifier.checks, checks, "no password check ran for a throttled source");
  // Cached credentials from the same source, and other sources, still pass.
  assert.ok((await scrape("scrape-pass", "10.6.6.6")).ok);
  assert.ok(
    (await auth.authenticate("reader", {
      authorization: basic("grafana", "read-pass"),
      peer: null,
      source: "10.0.0.1",
    })).ok,
  );
  // The budget refills evenly over the window.
  t += 20_000;
  const later = await scrape("again", "10.6.6.6");
  assert.equal(later.ok ? null : later.kind, "invalid");
});

// Issue 10 item 7: a non-scraper user name got 403 "may not act as scraper", the scraper with a wrong password 407.
Deno.test("issue 10: publicReason() gives one answer for every refused scraper and reader credential", async () => {
  const auth = createAuthenticator(parseAuthConfig(CONFIG, "auth.yml", users), { users });
  for (const role of ["scraper", "reader"] as const) {
    const header = role === "scraper" ? "proxyAuthorization" : "authorization";
    const answers = new Set<string>();
    for (
      const value of [
        undefined,
        basic("prometheus", "nope"),
        basic("grafana", "nope"),
        basic("nobody", "nope"),
        basic(role === "scraper" ? "grafana" : "nobody", "read-pass"),
        `Bearer ${NODE1}`,
        "Digest x",
      ]
    ) {
      const result = await auth.authenticate(role, { [header]: value, peer: null });
      assert.ok(!result.ok, `${role} ${value}`);
      answers.add(publicReason(role, auth.config[role], result));
    }
    assert.equal(answers.size, 1, [...answers].join(" | "));
    assert.match([...answers][0]!, new RegExp(`^${role} credentials required`));
  }
});
