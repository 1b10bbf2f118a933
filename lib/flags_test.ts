import assert from "node:assert/strict";
import { FlagError, type FlagSpec, formatHelp, parseFlags, singleDashFlags } from "./flags.ts";

const SPECS: FlagSpec[] = [
  {
    name: "web.listen-address",
    type: "string",
    help: "Listen here.",
    default: ":8080",
  },
  {
    name: "scrape.max-timeout",
    type: "duration",
    help: "Clamp.",
    default: "5m",
  },
  { name: "label", type: "string", help: "A label.", repeatable: true },
  {
    name: "log.format",
    type: "string",
    help: "Format.",
    default: "logfmt",
    choices: ["logfmt", "json"],
  },
  { name: "legacy", type: "boolean", help: "Old protocol.", default: "true" },
  { name: "limit", type: "integer", help: "A limit." },
];

Deno.test("parseFlags() fills defaults and converts types", () => {
  const v = parseFlags(SPECS, []);
  assert.equal(v["web.listen-address"], ":8080");
  assert.equal(v["scrape.max-timeout"], 300_000);
  assert.deepEqual(v["label"], []);
  assert.equal(v["legacy"], true);
  assert.equal(v["limit"], undefined);
  assert.equal(v.help, false);
});

Deno.test("parseFlags() reads given values, repeats and negated booleans", () => {
  const v = parseFlags(SPECS, [
    "--web.listen-address=127.0.0.1:0",
    "--scrape.max-timeout",
    "30s",
    "--label=a=b",
    "--label=c=d",
    "--no-legacy",
    "--limit=7",
  ]);
  assert.equal(v["web.listen-address"], "127.0.0.1:0");
  assert.equal(v["scrape.max-timeout"], 30_000);
  assert.deepEqual(v["label"], ["a=b", "c=d"]);
  assert.equal(v["legacy"], false);
  assert.equal(v["limit"], 7);
  assert.equal(parseFlags(SPECS, ["--legacy=false"])["legacy"], false);
});

Deno.test("parseFlags() names the flag that is wrong", () => {
  assert.throws(() => parseFlags(SPECS, ["--nope"]), FlagError);
  assert.throws(
    () => parseFlags(SPECS, ["--scrape.max-timeout=soon"]),
    /--scrape.max-timeout/,
  );
  assert.throws(
    () => parseFlags(SPECS, ["--log.format=xml"]),
    /not one of logfmt, json/,
  );
  assert.throws(() => parseFlags(SPECS, ["--limit=-1"]), /--limit/);
});

Deno.test("formatHelp() lists every flag with its default", () => {
  const help = formatHelp("usage: x", SPECS);
  for (const spec of SPECS) {
    assert.match(
      help,
      new RegExp(`--(\\[no-\\])?${spec.name.replace(".", "\\.")}`),
    );
  }
  assert.match(help, /default: 5m/);
  assert.match(help, /--help/);
});

Deno.test("parseFlags() takes single-dash long flags like double-dash ones", () => {
  const v = parseFlags(SPECS, [
    "-web.listen-address=127.0.0.1:0",
    "-scrape.max-timeout",
    "30s",
    "-label",
    "a=b",
    "-no-legacy",
    "-limit=7",
  ]);
  assert.equal(v["web.listen-address"], "127.0.0.1:0");
  assert.equal(v["scrape.max-timeout"], 30_000);
  assert.deepEqual(v["label"], ["a=b"]);
  assert.equal(v["legacy"], false);
  assert.equal(v["limit"], 7);
  for (const args of [["-h"], ["-help"], ["--help"]]) {
    assert.equal(parseFlags(SPECS, args).help, true);
  }
  for (const args of [["-version"], ["--version"]]) {
    assert.equal(parseFlags(SPECS, args).version, true);
  }
  assert.throws(() => parseFlags(SPECS, ["-nope"]), FlagError);
});

Deno.test("singleDashFlags() leaves short flags, unknown names and what follows -- alone", () => {
  assert.deepEqual(
    singleDashFlags(SPECS, ["-h", "-legacy=false", "-zzz", "--", "-limit=1"]),
    ["-h", "--legacy=false", "-zzz", "--", "-limit=1"],
  );
});

Deno.test("parseFlags() maps value aliases and lists them in --help", () => {
  const specs: FlagSpec[] = [{
    name: "log.level",
    type: "string",
    help: "Level.",
    default: "info",
    choices: ["debug", "info", "warn", "error"],
    valueAliases: { warning: "warn", fatal: "error" },
  }];
  assert.equal(parseFlags(specs, ["-log.level=warning"])["log.level"], "warn");
  assert.equal(parseFlags(specs, ["--log.level", "fatal"])["log.level"], "error");
  assert.throws(
    () => parseFlags(specs, ["--log.level=loud"]),
    /one of debug, info, warn, error, warning, fatal/,
  );
  assert.match(formatHelp("usage: x", specs), /aliases: warning=warn, fatal=error/);
});

Deno.test("parseFlags() types each value from a table declared as const", () => {
  const specs = [
    { name: "address", type: "string", help: "A.", default: ":8080" },
    { name: "timeout", type: "duration", help: "T.", default: "5s" },
    { name: "limit", type: "integer", help: "L." },
    { name: "on", type: "boolean", help: "O." },
    { name: "tag", type: "string", help: "T.", repeatable: true },
    { name: "format", type: "string", help: "F.", default: "a", choices: ["a", "b"] },
  ] as const satisfies readonly FlagSpec[];
  const v = parseFlags(specs, ["--limit=3", "--tag=x", "--format=b"]);
  const address: string = v.address;
  const timeout: number = v.timeout;
  const limit: number | undefined = v.limit;
  const on: boolean = v.on;
  const tags: string[] = v.tag;
  const format: "a" | "b" = v.format;
  assert.deepEqual([address, timeout, limit, on, tags, format], [
    ":8080",
    5000,
    3,
    false,
    ["x"],
    "b",
  ]);
  // A flag that is not in the table (a renamed one) does not compile.
  // @ts-expect-error: "adress" is not a flag
  assert.equal(v.adress, undefined);
  // @ts-expect-error: "limit" has no default, so it may be undefined
  const sure: number = v.limit;
  assert.equal(sure, 3);
});
