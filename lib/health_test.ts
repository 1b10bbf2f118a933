import assert from "node:assert/strict";
import { healthAnswer, type HealthOptions } from "./health.ts";

Deno.test("healthAnswer() answers /-/healthy always and /-/ready by the listener's readiness", () => {
  let ready = false;
  const options: HealthOptions = {
    healthy: "Healthy\n",
    ready: () => ready ? { ready, message: "Ready\n" } : { ready, message: "Not ready\n" },
  };
  const text = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };
  assert.deepEqual(healthAnswer(options, "GET", "/-/healthy"), {
    status: 200,
    headers: text,
    body: "Healthy\n",
  });
  assert.deepEqual(healthAnswer(options, "HEAD", "/-/ready"), {
    status: 503,
    headers: text,
    body: "Not ready\n",
  });
  ready = true;
  assert.equal(healthAnswer(options, "GET", "/-/ready")?.status, 200);
  assert.equal(healthAnswer(options, "GET", "/-/ready")?.body, "Ready\n");
});

Deno.test("healthAnswer() takes GET and HEAD only, and leaves other paths alone", () => {
  const options: HealthOptions = { healthy: "Healthy\n" };
  assert.deepEqual(healthAnswer(options, "POST", "/-/healthy"), {
    status: 405,
    headers: {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
      allow: "GET, HEAD",
    },
    body: "Method POST is not allowed on /-/healthy\n",
  });
  // Without `ready` the listener has no /-/ready.
  assert.equal(healthAnswer(options, "GET", "/-/ready"), null);
  assert.equal(healthAnswer(options, "POST", "/-/ready"), null);
  for (const path of ["/", "/metrics", "/-/healthy/", "/-/reload"]) {
    assert.equal(healthAnswer(options, "GET", path), null, path);
  }
});
