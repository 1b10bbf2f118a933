import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { CallCode, CallError, callErrorOf, codeFromName, codeName } from "./call_error.ts";

Deno.test("CallCode has connect-es' codes, numbers and names", () => {
  const theirs = Object.entries(Code).filter(([, v]) => typeof v === "number");
  assert.deepEqual(Object.entries(CallCode), theirs);
  for (const [, code] of theirs) {
    // ConnectError's message prefix is the code's wire name.
    const name = new ConnectError("x", code as Code).message.slice(1, -3);
    assert.equal(codeName(code as number), name);
    assert.equal(codeFromName(name), code);
  }
  assert.equal(codeFromName("no_such_code"), CallCode.Unknown);
});

Deno.test("CallError reads as a ConnectError of the same code and message", () => {
  for (
    const [message, code] of [["push failed: reset", CallCode.Unavailable], [
      "",
      CallCode.Canceled,
    ]] as const
  ) {
    const ours = new CallError(message, code, { "content-type": "text/html" });
    const theirs = new ConnectError(message, code as number as Code, {
      "content-type": "text/html",
    });
    assert.equal(ours.message, theirs.message);
    assert.equal(ours.name, theirs.name);
    assert.equal(ours.rawMessage, theirs.rawMessage);
    assert.equal(ours.metadata.get("content-type"), "text/html");
    assert.ok(ours instanceof Error);
  }
  assert.equal(new CallError("x").code, CallCode.Unknown);
});

Deno.test("callErrorOf() reads both kinds and nothing else", () => {
  const theirs = new ConnectError("HTTP 502", Code.Unavailable, { "content-type": "text/html" });
  const read = callErrorOf(theirs)!;
  assert.equal(read.code, CallCode.Unavailable);
  assert.equal(read.rawMessage, "HTTP 502");
  assert.equal(read.metadata.get("content-type"), "text/html");
  const ours = new CallError("already registered", CallCode.AlreadyExists);
  assert.equal(callErrorOf(ours), ours);
  assert.equal(callErrorOf(new Error("plain")), null);
  assert.equal(callErrorOf("text"), null);
  const named = Object.assign(new Error("looks alike"), { name: "ConnectError" });
  assert.equal(callErrorOf(named), null);
});
