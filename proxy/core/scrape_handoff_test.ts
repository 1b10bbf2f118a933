/**
 * The push hand-off alone: which pushes may answer a waiting scrape and the
 * reply the relaying side reads, without a coordinator.
 */

import assert from "node:assert/strict";
import { CoordinatorError } from "./coordinator_error.ts";
import { type Handoff, handOff, type PushHead, type ScrapeReply } from "./scrape_handoff.ts";

function waiting(): Handoff & { replies: ScrapeReply[]; finished: number } {
  const scrape = {
    id: "s1",
    sessionId: "session-1",
    credential: "alice",
    sent: true,
    answered: false,
    replies: [] as ScrapeReply[],
    finished: 0,
    resolve(reply: ScrapeReply) {
      scrape.replies.push(reply);
    },
    reject() {},
  };
  return scrape;
}

function head(overrides: Partial<PushHead> = {}): PushHead {
  return {
    scrapeId: "s1",
    sessionId: "session-1",
    status: 200,
    headers: [{ name: "content-type", value: "text/plain" }],
    error: "",
    ...overrides,
  };
}

async function* body(text: string): AsyncGenerator<Uint8Array> {
  yield new TextEncoder().encode(text);
}

function kind(expected: string) {
  return (error: unknown) => error instanceof CoordinatorError && error.kind === expected;
}

Deno.test("handOff gives the waiting scrape a reply and resolves when it is settled", async () => {
  const scrape = waiting();
  const pushed = handOff(
    scrape,
    head({ headers: [{ name: "Content-Length", value: "5" }] }),
    body("hello"),
    (s) => s.finished++,
  );
  const [reply] = scrape.replies;
  assert.ok(reply);
  assert.equal(reply.status, 200);
  assert.equal(reply.contentLength, 5);
  assert.deepEqual(reply.headers, [], "Content-Length travels apart from the headers");
  reply.settle();
  reply.settle(); // once only
  await pushed;
  assert.equal(scrape.finished, 1);
  assert.equal(scrape.answered, true);
});

Deno.test("a relay failure given to settle rejects the push", async () => {
  const scrape = waiting();
  const pushed = handOff(scrape, head(), body("x"), () => {});
  scrape.replies[0]!.settle(new Error("scraper went away"));
  await assert.rejects(pushed, /scraper went away/);
});

Deno.test("pushes that may not answer the scrape are refused by kind", async () => {
  await assert.rejects(handOff(undefined, head(), body(""), () => {}), kind("unknown_scrape"));
  await assert.rejects(
    handOff(waiting(), head({ sessionId: "other" }), body(""), () => {}),
    kind("foreign_scrape"),
  );
  await assert.rejects(
    handOff(waiting(), head({ credential: "mallory" }), body(""), () => {}),
    kind("foreign_scrape"),
  );
  const answered = waiting();
  answered.answered = true;
  await assert.rejects(handOff(answered, head(), body(""), () => {}), kind("duplicate_push"));
});

Deno.test("an invalid head fails the scrape at once with 502 and is refused", async () => {
  for (
    const [bad, expected] of [
      [head({ status: 101 }), "invalid_status"],
      [head({ headers: [{ name: "content-length", value: "1, 2" }] }), "invalid"],
    ] as const
  ) {
    const scrape = waiting();
    await assert.rejects(handOff(scrape, bad, body(""), (s) => s.finished++), kind(expected));
    const [reply] = scrape.replies;
    assert.equal(reply?.status, 502);
    assert.match(reply?.error ?? "", /the client's answer is invalid/);
    reply?.settle();
    assert.equal(scrape.finished, 1);
  }
});
