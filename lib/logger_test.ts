import assert from "node:assert/strict";
import { createLogger } from "./logger.ts";

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
  assert.deepEqual(JSON.parse(lines[0]!), {
    ts: "1970-01-01T00:00:00.000Z",
    level: "warn",
    msg: "shown",
    k: "v",
  });
});
