import assert from "node:assert/strict";
import { createLogger, createNullLogger, createRepeatFilter } from "./logger.ts";

Deno.test("createLogger() writes logfmt with quoting and child fields", () => {
  const lines: string[] = [];
  const logger = createLogger({ write: (l) => lines.push(l), now: () => 0 });
  logger.with({ scrape_id: "a1" }).info("Scrape done", {
    url: "http://h:1/m",
    err: new Error("bad thing"),
    n: 3,
  });
  assert.equal(
    lines[0],
    'ts=1970-01-01T00:00:00.000Z level=info msg="Scrape done" scrape_id=a1 url=http://h:1/m err="bad thing" n=3',
  );
});

Deno.test("createLogger() drops records below the level and writes JSON", () => {
  const lines: string[] = [];
  const logger = createLogger({
    level: "warn",
    format: "json",
    write: (l) => lines.push(l),
    now: () => 0,
  });
  logger.info("hidden");
  logger.warn("shown", { k: "v" });
  assert.equal(lines.length, 1);
  assert.deepEqual(
    (["debug", "info", "warn", "error"] as const).map((l) => logger.with({}).enabled?.(l)),
    [false, false, true, true],
  );
  assert.deepEqual(JSON.parse(lines[0]!), {
    ts: "1970-01-01T00:00:00.000Z",
    level: "warn",
    msg: "shown",
    k: "v",
  });
});

Deno.test("createNullLogger() writes at no level", () => {
  assert.equal(createNullLogger().enabled?.("error"), false);
});

Deno.test("createRepeatFilter() lets a key through once per interval, counting the rest", () => {
  let clock = 0;
  const filter = createRepeatFilter({ intervalMs: 60_000, now: () => clock, maxKeys: 2 });
  assert.equal(filter("403 a"), 0);
  assert.equal(filter("403 a"), null);
  assert.equal(filter("403 a"), null);
  assert.equal(filter("403 b"), 0, "another key is independent");
  clock = 60_000;
  assert.equal(filter("403 a"), 2, "two held back since the last line");
  assert.equal(filter("403 a"), null);
});
