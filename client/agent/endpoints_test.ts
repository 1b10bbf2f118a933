import assert from "node:assert/strict";
import {
  desiredEndpoints,
  isIpLiteral,
  reconcileEndpoints,
  redact,
  type Resolution,
} from "./endpoints.ts";

const A = "http://user:secret@pushprox.monitoring:8080/";
const B = "https://other.example/";

function resolved(entries: [string, string[], boolean?][]): Map<string, Resolution> {
  return new Map(entries.map(([url, addresses, pin]) => [url, { addresses, pin: pin ?? true }]));
}

Deno.test("desiredEndpoints() gives one endpoint per URL, and one per address when several", () => {
  assert.deepEqual(desiredEndpoints([A, B], new Map()).map((e) => [e.key, e.address, e.label]), [
    [A, null, "http://pushprox.monitoring:8080"],
    [B, null, "https://other.example"],
  ]);
  const split = desiredEndpoints(
    [A, B],
    resolved([[A, ["10.0.0.6", "10.0.0.5", "10.0.0.5"]], [B, ["192.0.2.1"]]]),
  );
  assert.deepEqual(split.map((e) => [e.key, e.address, e.label]), [
    [`${A}#10.0.0.5`, "10.0.0.5", "http://pushprox.monitoring:8080 (10.0.0.5)"],
    [`${A}#10.0.0.6`, "10.0.0.6", "http://pushprox.monitoring:8080 (10.0.0.6)"],
    [`${B}#192.0.2.1`, "192.0.2.1", "https://other.example (192.0.2.1)"],
  ]);
  // Not resolved (yet): by name.
  assert.deepEqual(
    desiredEndpoints([A], resolved([[A, []]])).map((e) => e.key),
    [A],
  );
  // Not pinned (HTTP proxy in use, or disabled): by name, however many addresses.
  assert.deepEqual(
    desiredEndpoints([A], resolved([[A, ["10.0.0.5", "10.0.0.6"], false]])).map((e) => e.key),
    [A],
  );
  // The same URL twice is one stream.
  assert.equal(desiredEndpoints([B, B], new Map()).length, 1);
});

Deno.test("reconcileEndpoints() starts new endpoints and stops vanished ones", () => {
  const before = desiredEndpoints([A], resolved([[A, ["10.0.0.5", "10.0.0.6"]]]));
  const after = desiredEndpoints([A], resolved([[A, ["10.0.0.6", "10.0.0.7"]]]));
  const { start, stop } = reconcileEndpoints(before.map((e) => e.key), after);
  assert.deepEqual(start.map((e) => e.address), ["10.0.0.7"]);
  assert.deepEqual(stop, [`${A}#10.0.0.5`]);
  assert.deepEqual(reconcileEndpoints(after.map((e) => e.key), after), { start: [], stop: [] });
  // Shrinking to one address stops only the stream whose address went.
  const single = desiredEndpoints([A], resolved([[A, ["10.0.0.6"]]]));
  const change = reconcileEndpoints(after.map((e) => e.key), single);
  assert.deepEqual(change.start, []);
  assert.deepEqual(change.stop, [`${A}#10.0.0.7`]);
});

Deno.test("redact() drops credentials; isIpLiteral() spots addresses", () => {
  assert.equal(redact(A), "http://pushprox.monitoring:8080");
  assert.equal(isIpLiteral("10.0.0.5"), true);
  assert.equal(isIpLiteral("[fd00::1]"), true);
  assert.equal(isIpLiteral("pushprox"), false);
});
