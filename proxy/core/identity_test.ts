import assert from "node:assert/strict";
import { fqdnProblem, labelsProblem, modulesProblem } from "./identity.ts";

Deno.test("fqdnProblem() accepts host names and IP literals", () => {
  for (
    const ok of [
      "node1",
      "node1.example.com",
      "node1.example.com.",
      "10.0.0.5",
      "::1",
      "fe80::1%eth0",
      "k8s_node-1",
    ]
  ) {
    assert.equal(fqdnProblem(ok), null, ok);
  }
});

Deno.test("fqdnProblem() rejects path, port, credential and control characters", () => {
  for (
    const bad of [
      "",
      "a/b",
      "a:80",
      "user@host",
      "a b",
      "host\n",
      "a?b",
      "a#b",
      "-",
      "x".repeat(254),
    ]
  ) {
    assert.notEqual(fqdnProblem(bad), null, JSON.stringify(bad));
  }
});

Deno.test("labelsProblem() enforces Prometheus label names", () => {
  assert.equal(labelsProblem({ zone: "eu", _x: "" }), null);
  assert.match(labelsProblem({ "1x": "a" })!, /1x/);
  assert.match(labelsProblem({ __address__: "a" })!, /__address__/);
});

Deno.test("modulesProblem() rejects names with path characters", () => {
  assert.equal(modulesProblem(["node", "blackbox.v2"]), null);
  assert.notEqual(modulesProblem(["../etc"]), null);
  assert.notEqual(modulesProblem(["a/b"]), null);
});
