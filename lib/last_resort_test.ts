import assert from "node:assert/strict";
import { installLastResort } from "./last_resort.ts";
import { createLogger } from "./logger.ts";

Deno.test("installLastResort() logs at error level, counts and prevents the default", () => {
  const lines: string[] = [];
  let count = 0;
  const target = new EventTarget();
  const remove = installLastResort({
    logger: createLogger({ write: (line) => lines.push(line), now: () => 0 }),
    count: () => count++,
    target,
  });
  const rejection = new Event("unhandledrejection", { cancelable: true });
  Object.defineProperty(rejection, "reason", { value: new Error("boom") });
  target.dispatchEvent(rejection);
  const error = new ErrorEvent("error", { cancelable: true, error: new Error("bang") });
  target.dispatchEvent(error);
  assert.equal(rejection.defaultPrevented, true);
  assert.equal(error.defaultPrevented, true);
  assert.equal(count, 2);
  assert.match(lines[0]!, /level=error msg="Uncaught promise rejection.*err=boom/);
  assert.match(lines[1]!, /level=error msg="Uncaught error.*err=bang/);
  remove();
  target.dispatchEvent(new ErrorEvent("error", { cancelable: true }));
  assert.equal(count, 2);
});
