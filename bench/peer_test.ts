import assert from "node:assert/strict";
import { checkPeerFlags } from "./cli.ts";
import { expandCommand, freePort, startPeerExporter, startPeerProxy } from "./peer.ts";

Deno.test("expandCommand() fills placeholders and splits at whitespace", () => {
  assert.deepEqual(
    expandCommand("pushprox-client  --proxy-url={proxy_url} --fqdn={fqdn}\t-x", {
      proxy_url: "http://127.0.0.1:8080/",
      fqdn: "localhost",
    }),
    ["pushprox-client", "--proxy-url=http://127.0.0.1:8080/", "--fqdn=localhost", "-x"],
  );
  assert.deepEqual(
    expandCommand("p --web.listen-address=127.0.0.1:{port} --a={port}", { port: 9 }),
    ["p", "--web.listen-address=127.0.0.1:9", "--a=9"],
  );
});

Deno.test("expandCommand() refuses unknown, unavailable and empty templates", () => {
  assert.throws(
    () => expandCommand("p --listen=:{prot}", { port: 1 }),
    /Cannot expand "\{prot\}".*placeholders are \{port\}/,
  );
  assert.throws(
    () => expandCommand("p --fqdn={fqdn}", { port: 1 }),
    /Cannot expand "\{fqdn\}".*not available here \(only \{port\}\)/,
  );
  assert.throws(() => expandCommand("  ", {}), /empty command template/);
});

Deno.test("checkPeerFlags() names what is wrong with the peer flags", () => {
  const proxy = "pushprox-proxy --web.listen-address={address}";
  const client = "pushprox-client --proxy-url={proxy_url} --fqdn={fqdn}";
  assert.equal(checkPeerFlags({ profile: "default" }), null);
  assert.equal(
    checkPeerFlags({ profile: "default", "peer.proxy": proxy, "peer.client": client }),
    null,
  );
  assert.match(
    checkPeerFlags({ profile: "default", "peer.proxy": proxy }) ?? "",
    /--peer.proxy and --peer.client go together/,
  );
  assert.match(
    checkPeerFlags({ profile: "churn", "peer.proxy": proxy, "peer.client": client }) ?? "",
    /--peer.proxy applies to --profile=default and smoke, not churn/,
  );
  assert.match(
    checkPeerFlags({ profile: "default", "peer.exporter": "e -config.file={config}" }) ?? "",
    /--peer.exporter applies to --profile=modules and smoke/,
  );
  assert.match(
    checkPeerFlags({
      profile: "default",
      "peer.proxy": "p --web.listen-address={fqdn}",
      "peer.client": client,
    }) ?? "",
    /--peer.proxy: Cannot expand "\{fqdn\}"/,
  );
  assert.match(checkPeerFlags({ profile: "smoke", rounds: "0" }) ?? "", /--rounds/);
  assert.match(
    checkPeerFlags({ profile: "smoke", "post-load-wait": "soon" }) ?? "",
    /--post-load-wait/,
  );
});

Deno.test("startPeerExporter() fails clearly when the program exits before listening", async () => {
  await assert.rejects(
    startPeerExporter(
      `${Deno.execPath()} eval Deno.exit(3) {address} {config}`,
      Deno.cwd(),
      "expexp.yaml",
    ),
    /peer exporter exited before listening on \d+/,
  );
  assert.ok(freePort() > 0);
});

Deno.test("startPeerProxy() names a command that does not exist", async () => {
  await assert.rejects(
    startPeerProxy("/nonexistent/pushprox-proxy --web.listen-address={address}", Deno.cwd()),
    /Cannot start the peer proxy "\/nonexistent\/pushprox-proxy"/,
  );
});
