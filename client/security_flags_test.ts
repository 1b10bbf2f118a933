import assert from "node:assert/strict";
import { FlagError, parseFlags } from "../lib/flags.ts";
import { readSecuritySettings, SECURITY_FLAGS } from "./security_flags.ts";
import { withAuthorization } from "./transport/authorization.ts";
import type { Transport } from "@connectrpc/connect";
import { tempDir } from "../tests/fixture.ts";

const flags = (...args: string[]) => parseFlags(SECURITY_FLAGS, args);

Deno.test("readSecuritySettings() reads ports, paths and use-localhost", () => {
  const settings = readSecuritySettings(
    flags("--allow-port=9100", "--allow-port=443", "--allow-path=/metrics", "--use-localhost"),
  );
  assert.deepEqual(settings.scrapePolicy, {
    allowPorts: [9100, 443],
    allowPaths: ["/metrics"],
    useLocalhost: true,
  });
  assert.equal(readSecuritySettings(flags("--allow-port=*")).scrapePolicy.allowPorts, null);
  assert.equal(readSecuritySettings(flags()).proxyAuthorization, null);
});

Deno.test("readSecuritySettings() refuses bad flags naming them", () => {
  const cases: [string[], RegExp][] = [
    [["--allow-port=http"], /--allow-port: "http" is not a port/],
    [["--allow-port=70000"], /--allow-port/],
    [["--use-localhost"], /--use-localhost needs --allow-port/],
    [["--allow-path=metrics"], /--allow-path: "metrics" must start with \//],
    [["--target.tls.cert=/x"], /--target\.tls\.cert and --target\.tls\.key go together/],
    [["--target.tls.ca=/no/such/file"], /--target\.tls\.ca: cannot read \/no\/such\/file/],
    [["--auth.token-file=/no/such/file"], /--auth\.token-file: cannot read/],
  ];
  for (const [args, pattern] of cases) {
    assert.throws(() => readSecuritySettings(flags(...args)), (e: Error) => {
      assert.ok(e instanceof FlagError);
      assert.match(e.message, pattern);
      return true;
    }, args.join(" "));
  }
});

Deno.test("--auth.token-file: short tokens are refused, the file is re-read per call", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
  await Deno.writeTextFile(`${dir}/short`, "abc\n");
  assert.throws(
    () => readSecuritySettings(flags(`--auth.token-file=${dir}/short`)),
    /at least 16 characters/,
  );
  await Deno.writeTextFile(`${dir}/token`, "0123456789abcdef-one\n");
  const settings = readSecuritySettings(flags(`--auth.token-file=${dir}/token`));
  assert.equal(settings.proxyAuthorization!(), "Bearer 0123456789abcdef-one");
  await Deno.writeTextFile(`${dir}/token`, "0123456789abcdef-two\n");
  assert.equal(settings.proxyAuthorization!(), "Bearer 0123456789abcdef-two");
  await Deno.remove(`${dir}/token`);
  assert.equal(
    settings.proxyAuthorization!(),
    "Bearer 0123456789abcdef-two",
    "keeps the last good one",
  );
  // Both a token and user:password would fight over Authorization.
  await Deno.writeTextFile(`${dir}/token`, "0123456789abcdef-one\n");
  assert.throws(
    () =>
      readSecuritySettings({
        ...flags(`--auth.token-file=${dir}/token`),
        "proxy-url": ["https://u:p@proxy/"],
      }),
    /both set Authorization/,
  );
  // Any of several proxies.
  assert.throws(
    () =>
      readSecuritySettings({
        ...flags(`--auth.token-file=${dir}/token`),
        "proxy-url": ["https://proxy-a/", "https://u:p@proxy-b/"],
      }),
    /both set Authorization/,
  );
});

Deno.test("withAuthorization() reads the header when a Poll opens and keeps it for its pushes", async () => {
  const seen: string[] = [];
  const inner = {
    unary(_m: unknown, _s: unknown, _t: unknown, header: HeadersInit | undefined) {
      seen.push(new Headers(header).get("authorization") ?? "");
      return Promise.resolve({});
    },
    stream(_m: unknown, _s: unknown, _t: unknown, header: HeadersInit | undefined) {
      seen.push(new Headers(header).get("authorization") ?? "");
      return Promise.resolve({});
    },
  } as unknown as Transport;
  let n = 0;
  const wrapped = withAuthorization(inner, () => `Bearer t${++n}`);
  // deno-lint-ignore no-explicit-any
  const any = wrapped as any;
  const poll = { name: "Poll" };
  const push = { name: "Push" };
  await any.stream(poll, undefined, undefined, undefined, [], undefined);
  await any.stream(push, undefined, undefined, { "x-a": "1" }, [], undefined);
  // A new stream reads the (rotated) token again; its pushes use that one.
  await any.stream(poll, undefined, undefined, undefined, [], undefined);
  await any.stream(push, undefined, undefined, undefined, [], undefined);
  assert.deepEqual(seen, ["Bearer t1", "Bearer t1", "Bearer t2", "Bearer t2"]);
});
