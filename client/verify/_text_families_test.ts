import assert from "node:assert/strict";
import { FamilyTable, KW_HELP, KW_TYPE, T_NONE, TEXT_TYPES } from "./_text_families.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function meta(table: FamilyTable, kw: number, name: string, type = T_NONE): string | null {
  const b = bytes(name);
  return table.meta(kw, b, 0, b.length, type);
}

function sample(table: FamilyTable, name: string): void {
  const b = bytes(name);
  table.sample(b, 0, b.length);
}

const HISTOGRAM = TEXT_TYPES.get("histogram")!;

Deno.test("FamilyTable refuses duplicate metadata and a TYPE after the family's samples", () => {
  const table = new FamilyTable(false, 100);
  assert.equal(meta(table, KW_HELP, "rpc_seconds"), null);
  assert.equal(meta(table, KW_TYPE, "rpc_seconds", HISTOGRAM), null);
  assert.match(meta(table, KW_HELP, "rpc_seconds") ?? "", /duplicate # HELP line/);
  sample(table, "rpc_seconds_bucket");
  sample(table, "rpc_seconds_sum");
  // The samples belonged to the family (its type's suffixes), so no new one started.
  assert.match(meta(table, KW_TYPE, "rpc_seconds") ?? "", /duplicate # TYPE line/);
  sample(table, "other_total");
  assert.match(
    meta(table, KW_TYPE, "other_total", TEXT_TYPES.get("counter")!) ?? "",
    /must come before its samples/,
  );
});

Deno.test("FamilyTable in OpenMetrics refuses a TYPE whose suffixed samples came first", () => {
  const table = new FamilyTable(true, 100);
  sample(table, "rpc_seconds_count");
  assert.match(
    meta(table, KW_TYPE, "rpc_seconds", HISTOGRAM) ?? "",
    /saw "rpc_seconds_count" earlier/,
  );
});

Deno.test("FamilyTable beyond maxFamilies only checks the current family", () => {
  const table = new FamilyTable(false, 2);
  for (const name of ["a", "b", "c"]) assert.equal(meta(table, KW_HELP, name), null);
  // "a" is forgotten: its HELP again is not a duplicate any more.
  assert.equal(meta(table, KW_HELP, "a"), null);
  assert.match(meta(table, KW_HELP, "a") ?? "", /duplicate/);
});

Deno.test("FamilyTable remembers thousands of families across its growth", () => {
  const table = new FamilyTable(true, 100_000);
  const counter = TEXT_TYPES.get("counter")!;
  for (let i = 0; i < 5000; i++) {
    assert.equal(meta(table, KW_TYPE, `family_${i}`, counter), null);
    sample(table, `family_${i}_total`);
    sample(table, `sampled_${i}_count`);
  }
  for (let i = 0; i < 5000; i += 499) {
    assert.match(meta(table, KW_TYPE, `family_${i}`, counter) ?? "", /duplicate # TYPE/);
    assert.match(
      meta(table, KW_TYPE, `sampled_${i}`, HISTOGRAM) ?? "",
      new RegExp(`saw "sampled_${i}_count" earlier`),
    );
  }
  assert.match(meta(table, KW_HELP, "family_1") ?? "", /must come before its samples/);
  // Names that differ in one byte, or by a byte moved, are other families.
  for (const name of ["family_5000", "family_1x", "famliy_1", "family1_"]) {
    assert.equal(meta(table, KW_HELP, name), null);
  }
});

Deno.test("FamilyTable compares names as bytes, UTF-8 names included", () => {
  const table = new FamilyTable(false, 100);
  assert.equal(meta(table, KW_HELP, "température"), null);
  assert.equal(meta(table, KW_HELP, "temperature"), null);
  assert.match(meta(table, KW_HELP, "température") ?? "", /duplicate # HELP line .*"température"/);
});
