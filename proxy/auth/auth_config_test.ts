import assert from "node:assert/strict";
import { sha256Hex } from "../../lib/basic_auth.ts";
import { ConfigError } from "../../lib/web_config.ts";
import { defaultAuthConfig, parseAuthConfig } from "./auth_config.ts";

/** Parsing only checks that named users exist; their hashes are not read. */
const users = new Map([["prometheus", "unused"], ["grafana", "unused"]]);

Deno.test("parseAuthConfig() reads each role's policy", () => {
  const config = parseAuthConfig(
    `clients:
  certificates: true
  tokens:
    - name: node1
      sha256: ${sha256Hex("node1-token").toUpperCase()}
      fqdns: [node1.example.com, "*.web"]
      expires: 2027-01-31T00:00:00Z
scrapers:
  basic_auth_users: [prometheus]
  certificates: [prometheus.example.com]
readers:
  open: true
`,
    "auth.yml",
    users,
  );
  assert.equal(config.source, "auth.yml");
  assert.equal(config.client.open, false);
  assert.equal(config.client.certificates, true);
  assert.deepEqual(config.client.tokens, [{
    name: "node1",
    sha256: sha256Hex("node1-token"),
    fqdns: ["node1.example.com", "*.web"],
    expires: Date.parse("2027-01-31T00:00:00Z"),
  }]);
  assert.deepEqual([...config.scraper.users as Set<string>], ["prometheus"]);
  assert.deepEqual(config.scraper.certificates, ["prometheus.example.com"]);
  assert.equal(config.reader.open, true);
});

Deno.test("parseAuthConfig() names a token after its hash when it has no name", () => {
  const hash = sha256Hex("reader-token");
  const config = parseAuthConfig(
    `clients: {open: true}\nscrapers: {open: true}\nreaders:\n  tokens:\n    - sha256: ${hash}\n`,
    "auth.yml",
    users,
  );
  assert.equal(config.reader.tokens[0]!.name, hash.slice(0, 8));
  assert.equal(config.reader.tokens[0]!.expires, null);
});

Deno.test("defaultAuthConfig(): open roles without users, every user with them", () => {
  const open = defaultAuthConfig(new Map());
  assert.equal(open.source, "none");
  assert.ok(open.client.open && open.scraper.open && open.reader.open);
  const closed = defaultAuthConfig(users);
  assert.equal(closed.source, "web config basic_auth_users");
  assert.equal(closed.scraper.open, false);
  assert.equal(closed.scraper.users, "all");
});

Deno.test("parseAuthConfig() refuses incomplete or wrong files with the reason", () => {
  const cases: [string, RegExp][] = [
    ["clients: {open: true}\nscrapers: {open: true}\n", /"readers" is missing/],
    ["clients: {}\nscrapers: {open: true}\nreaders: {open: true}\n", /nobody could act as clients/],
    [
      "clients: {open: true, certificates: true}\nscrapers: {open: true}\nreaders: {open: true}\n",
      /an open role takes no credentials/,
    ],
    [
      "clients: {open: true}\nscrapers: {basic_auth_users: [mallory]}\nreaders: {open: true}\n",
      /user "mallory" is not in the web config/,
    ],
    [
      "clients:\n  tokens:\n    - sha256: abc\n      fqdns: [a]\nscrapers: {open: true}\nreaders: {open: true}\n",
      /auth\.yml:3 .*64 hex digits/,
    ],
    [
      `clients:\n  tokens:\n    - sha256: ${
        sha256Hex("x")
      }\nscrapers: {open: true}\nreaders: {open: true}\n`,
      /needs fqdns/,
    ],
    [
      `clients:\n  tokens:\n    - sha256: ${
        sha256Hex("x")
      }\n      fqdns: [a]\n      expires: someday\nscrapers: {open: true}\nreaders: {open: true}\n`,
      /expected a date/,
    ],
    [
      "clients: {open: true}\nscrapers: {open: true}\nreaders: {open: true}\nwriters: {}\n",
      /unknown key "writers"/,
    ],
    [
      "clients: {open: true, tokenz: []}\nscrapers: {open: true}\nreaders: {open: true}\n",
      /unknown key "tokenz" in clients/,
    ],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(() => parseAuthConfig(text, "auth.yml", users), (e: Error) => {
      assert.ok(e instanceof ConfigError, e.message);
      assert.match(e.message, pattern);
      return true;
    }, text);
  }
});
