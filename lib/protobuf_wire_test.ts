import assert from "node:assert/strict";
import {
  KeptTexts,
  stringFieldSize,
  utf8Length,
  varintLength,
  writeStringField,
  writeUtf8,
  writeVarint,
} from "./protobuf_wire.ts";

Deno.test("utf8Length() and writeUtf8() agree with TextEncoder, lone surrogates included", () => {
  const encoder = new TextEncoder();
  const texts = [
    "",
    "plain",
    "é€😀中",
    "\ud800",
    "a\udc00b",
    "\ud800\ud800\udc00",
    "\u0000\u007f\u0080\u07ff\u0800\uffff",
  ];
  for (const text of texts) {
    const expected = encoder.encode(text);
    assert.equal(utf8Length(text), expected.byteLength, JSON.stringify(text));
    const out = new Uint8Array(expected.byteLength + 2);
    assert.equal(writeUtf8(out, 1, text, expected.byteLength), expected.byteLength + 1);
    assert.deepEqual(out.subarray(1, 1 + expected.byteLength), expected);
  }
  // A length that is not the text's (utf8Length gives the right one).
  assert.throws(() => writeUtf8(new Uint8Array(8), 0, "é€", 3), RangeError);
});

Deno.test("varints and string fields as the protobuf wire format writes them", () => {
  for (
    const [value, bytes] of [
      [0, [0]],
      [127, [0x7f]],
      [128, [0x80, 0x01]],
      [300, [0xac, 0x02]],
      [2 ** 32 - 1, [0xff, 0xff, 0xff, 0xff, 0x0f]],
    ] as const
  ) {
    const out = new Uint8Array(8);
    assert.equal(varintLength(value), bytes.length);
    assert.equal(writeVarint(out, 0, value), bytes.length);
    assert.deepEqual([...out.subarray(0, bytes.length)], bytes);
  }
  const out = new Uint8Array(8);
  assert.equal(stringFieldSize(0), 0);
  assert.equal(writeStringField(out, 0, 0x0a, "", 0), 0);
  assert.equal(stringFieldSize(2), 4);
  assert.equal(writeStringField(out, 0, 0x0a, "hi", 2), 4);
  assert.deepEqual([...out.subarray(0, 4)], [0x0a, 2, 0x68, 0x69]);
});

Deno.test("KeptTexts takes a kept text again only for its bytes, and keeps only short ASCII text", () => {
  const texts = new KeptTexts(2, 8);
  const bytes = (text: string) => new TextEncoder().encode(`..${text}..`);
  const take = (slot: number, text: string) => {
    const b = bytes(text);
    return texts.take(slot, b, 2, b.byteLength - 2);
  };
  assert.equal(take(0, "abc"), undefined);
  texts.keep(0, "abc", 3);
  assert.equal(take(0, "abc"), "abc");
  assert.equal(take(0, "abd"), undefined, "a byte differs");
  assert.equal(take(0, "ab"), undefined, "a length differs");
  assert.equal(take(1, "abc"), undefined, "another slot");
  // Not ASCII (more bytes than code units), too long, or no such slot: not kept.
  texts.keep(1, "é", 2);
  assert.equal(texts.text(1), undefined);
  texts.keep(1, "123456789", 9);
  assert.equal(texts.text(1), undefined);
  texts.keep(2, "x", 1);
  texts.keep(-1, "x", 1);
  assert.equal(take(-1, "x"), undefined);
  assert.equal(texts.slots, 2);
  texts.keep(0, "xyz", 3);
  assert.equal(take(0, "abc"), undefined, "replaced");
  assert.equal(take(0, "xyz"), "xyz");
});
