import assert from "node:assert/strict";
import { findCycles } from "./import_cycles.ts";

const graph = (edges: Record<string, string[]>) => new Map(Object.entries(edges));

Deno.test("findCycles() finds nothing in a layered graph", () => {
  assert.deepEqual(
    findCycles(graph({ main: ["server", "lib"], server: ["lib", "core"], core: ["lib"], lib: [] })),
    [],
  );
  assert.deepEqual(findCycles(graph({})), []);
});

Deno.test("findCycles() finds two modules importing each other, and a self-import", () => {
  assert.deepEqual(findCycles(graph({ b: ["a"], a: ["b"], c: ["c"], d: ["a"] })), [
    ["a", "b"],
    ["c"],
  ]);
});

Deno.test("findCycles() gives one shortest circle per group, from its smallest node", () => {
  // a -> b -> c -> d -> a, and a shortcut c -> a: one group, circle a b c.
  assert.deepEqual(
    findCycles(graph({ a: ["b"], b: ["c"], c: ["d", "a"], d: ["a"], x: ["y"], y: ["x"] })),
    [["a", "b", "c"], ["x", "y"]],
  );
});

Deno.test("findCycles() handles a long chain without recursion", () => {
  const edges: Record<string, string[]> = {};
  for (let i = 0; i < 20_000; i++) edges[`m${i}`] = [`m${i + 1}`];
  assert.deepEqual(findCycles(graph(edges)), []);
  edges["m20000"] = ["m0"];
  assert.equal(findCycles(graph(edges))[0]!.length, 20_001);
});
