import assert from "node:assert/strict";
import { errorMessage } from "./error_message.ts";

Deno.test("errorMessage() reads an error's message", () => {
  assert.equal(errorMessage(new Error("boom")), "boom");
  assert.equal(errorMessage(new RangeError("out")), "out");
  assert.equal(errorMessage(new DOMException("gone", "AbortError")), "gone");
});

Deno.test("errorMessage() reads error-like objects and other values", () => {
  assert.equal(errorMessage({ message: "like an error" }), "like an error");
  assert.equal(errorMessage("text"), "text");
  assert.equal(errorMessage(42), "42");
  assert.equal(errorMessage(undefined), "undefined");
  assert.equal(errorMessage(null), "null");
  assert.equal(errorMessage({ message: 7 }), "[object Object]");
});

Deno.test("errorMessage() never throws, even for values String() refuses", () => {
  assert.equal(errorMessage(Object.create(null)), "[object Object]");
  assert.equal(errorMessage(Symbol("s")), "Symbol(s)");
});
