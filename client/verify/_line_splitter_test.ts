import assert from "node:assert/strict";
import { LineSplitter } from "./_line_splitter.ts";
import { VerificationError } from "./verification_error.ts";

/** Feeds `chunks` and collects the lines handed out, the last one included. */
function split(chunks: string[], maxLineBytes = 1024): string[] {
  const lines = new LineSplitter(maxLineBytes);
  const out: string[] = [];
  const take = () =>
    out.push(
      `${lines.lineNo}:${new TextDecoder().decode(lines.bytes.subarray(lines.start, lines.end))}`,
    );
  for (const chunk of chunks) {
    lines.feed(new TextEncoder().encode(chunk));
    while (lines.next()) take();
    assert.equal(lines.pending, false);
  }
  if (lines.carried && lines.last()) take();
  return out;
}

Deno.test("LineSplitter hands out lines whatever the chunk boundaries", () => {
  const expected = ["1:a 1", "2:", "3:bb 2", "4:tail"];
  assert.deepEqual(split(["a 1\n\nbb 2\ntail"]), expected);
  assert.deepEqual(split(["a", " 1\n", "\nb", "b 2", "\nta", "il"]), expected);
  assert.deepEqual(split([..."a 1\n\nbb 2\ntail"]), expected);
});

Deno.test("LineSplitter refuses a line over the limit, in one chunk or carried", () => {
  for (const chunks of [["ok\n12345\n"], ["ok\n123", "45\n"], ["ok\n123", "456"]]) {
    assert.throws(() => split(chunks, 4), (error: unknown) => {
      assert.ok(error instanceof VerificationError);
      assert.equal(error.kind, "too_large");
      assert.equal(error.line, 2);
      return true;
    });
  }
  assert.deepEqual(split(["1234\n12", "34"], 4), ["1:1234", "2:1234"]);
});

Deno.test("LineSplitter carries a long partial line and starts small again after it", () => {
  const long = "x".repeat(100_000);
  const chunks = [long.slice(0, 30_000), long.slice(30_000), "\nnext\n"];
  assert.deepEqual(split(chunks, 200_000).map((l) => l.length), [2 + 100_000, 6]);
});
