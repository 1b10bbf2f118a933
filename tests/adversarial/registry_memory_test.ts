/**
 * Registry memory under hostile registrations (issue #10 item 4): for 10 s,
 * Connect Polls from 8 connections at a time, each registering a new fqdn
 * with a PollRequest.version of 900 KB (under the 1 MiB message limit) and
 * dropping the stream at once, so that every record stays for
 * --registration.timeout. The proxy's RSS (from /proc/PID/status) must grow
 * by less than 192 MiB (about 200 such records, unbounded, take more); the
 * flood stops early when it does not.
 */

import assert from "node:assert/strict";
import { concat, envelope, pollRequest, rawExchange, startAdversary } from "./harness.ts";
import { stopping } from "../fixture.ts";

const BOUND_MIB = 192;

function poll(fqdn: string, version: string): Uint8Array {
  const body = envelope(0, pollRequest(fqdn, version));
  return concat(
    `POST /pushprox.v1.ClientService/Poll HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
      `Content-Type: application/connect+proto\r\nConnect-Protocol-Version: 1\r\n` +
      `Content-Length: ${body.length}\r\n\r\n`,
    body,
  );
}

/**
 * How the proxy answered a Poll: "registered" (a message first), the code
 * of the error that ended the stream, or "no answer".
 */
function outcomeOf(answer: string): string {
  // The body is chunked: a size line, then the first envelope's flags byte.
  const first = /^HTTP\/1\.1 200 [^]*?\r\n\r\n[0-9a-f]+\r\n([^])/.exec(answer);
  if (first === null) {
    return answer.startsWith("HTTP/1.1 ") ? `HTTP ${answer.slice(9, 12)}` : "no answer";
  }
  if (first[1] === "\u0000") return "registered";
  return /"code":"(\w+)"/.exec(answer)?.[1] ?? "ended";
}

Deno.test({
  name: `adversarial: hostile registrations grow the proxy's memory by less than ${BOUND_MIB} MiB`,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using stack = stopping(await startAdversary());
    const version = "v".repeat(900 * 1024);
    const before = stack.usage().rssKb;
    let peakKb = before;
    let sent = 0;
    const outcomes = new Map<string, number>();
    let over = false;
    const until = performance.now() + 10_000;
    const worker = async (id: number) => {
      while (!over && performance.now() < until) {
        const n = sent++;
        const { answer } = await rawExchange(stack.port, poll(`hostile-${id}-${n}`, version), {
          end: false,
          timeoutMs: 2_000,
          // The head and the first message (Registered) of the stream.
          until: (text) => /\r\n\r\n[^]{5,}/.test(text),
        });
        const outcome = outcomeOf(answer);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        const rssKb = stack.usage().rssKb;
        peakKb = Math.max(peakKb, rssKb);
        if (rssKb - before > BOUND_MIB * 1024) over = true;
      }
    };
    const started = performance.now();
    await Promise.all(Array.from({ length: 8 }, (_, i) => worker(i)));
    const seconds = (performance.now() - started) / 1000;
    const growthMiB = Math.round((peakKb - before) / 1024);
    console.log(
      `registry flood: ${sent} registrations of 900 KB in ${seconds.toFixed(1)} s (${
        Math.round(sent / seconds)
      }/s; ${[...outcomes].map(([outcome, n]) => `${n} ${outcome}`).join(", ")}); RSS ${
        Math.round(before / 1024)
      } -> peak ${Math.round(peakKb / 1024)} MiB (+${growthMiB} MiB)${
        over ? ", stopped at the bound" : ""
      }`,
    );
    await stack.checkAfter("registry flood");
    assert.ok(!over, `RSS grew by more than ${BOUND_MIB} MiB (+${growthMiB} MiB)`);
  },
});
