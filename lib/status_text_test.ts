import assert from "node:assert/strict";
import { STATUS_CODES } from "node:http";
import { STATUS_TEXT } from "./status_text.ts";

Deno.test("STATUS_TEXT is node:http's STATUS_CODES", () => {
  assert.deepEqual({ ...STATUS_TEXT }, { ...STATUS_CODES });
});
