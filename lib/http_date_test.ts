import assert from "node:assert/strict";
import { httpDate } from "./http_date.ts";

Deno.test("httpDate() is the current time in the HTTP date format", () => {
  const before = Math.floor(Date.now() / 1000) * 1000;
  const text = httpDate();
  assert.match(text, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  const at = Date.parse(text);
  assert.ok(at >= before && at <= Date.now(), `${text} is not now`);
});
