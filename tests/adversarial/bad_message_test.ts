/**
 * Request messages that cannot be decoded, sent over raw sockets to the
 * running proxy in every protocol it serves (Connect unary and streaming,
 * binary and JSON, gRPC-Web on the main port, gRPC on the gRPC port): each
 * is the client's fault and gets Connect `invalid_argument` (HTTP 400 for
 * unary Connect, grpc-status 3) naming the message that could not be
 * decoded, never `internal` (HTTP 500, grpc-status 13). The proxy lives.
 */

import assert from "node:assert/strict";
import { connect as connectHttp2 } from "node:http2";
import { concat, envelope, rawExchange, startAdversary, withTimeout } from "./harness.ts";
import { stopping } from "../fixture.ts";

const GARBAGE = Uint8Array.from([0xff, 0xff, 0xff]);
const BAD_JSON = new TextEncoder().encode("{nope");
const LIST = "/pushprox.v1.RegistryService/ListClients";
const WATCH = "/pushprox.v1.RegistryService/WatchClients";
const POLL = "/pushprox.v1.ClientService/Poll";
const PUSH = "/pushprox.v1.ClientService/Push";

/** What each call's message type is, for the expected error message. */
const TYPES: Record<string, string> = {
  [LIST]: "pushprox.v1.ListClientsRequest",
  [WATCH]: "pushprox.v1.WatchClientsRequest",
  [POLL]: "pushprox.v1.PollRequest",
  [PUSH]: "pushprox.v1.PushRequest",
};

/** One HTTP/1.1 request, closed by the server after its answer. */
function http1(path: string, contentType: string, body: Uint8Array, connect: boolean): Uint8Array {
  return concat(
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\n` +
      (connect ? "Connect-Protocol-Version: 1\r\n" : "") +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    body,
  );
}

/** Sends one request and returns the raw answer (the server closes after it). */
async function answerOf(port: number, request: Uint8Array): Promise<string> {
  // No half-close: node:http drops the answer to a request whose peer sent FIN.
  const { answer } = await rawExchange(port, request, { end: false, timeoutMs: 10_000 });
  return answer;
}

/** A gRPC call on the h2c port: its HTTP status, grpc-status and decoded grpc-message. */
function grpcCall(port: number, path: string, contentType: string, body: Uint8Array) {
  return withTimeout(
    new Promise<{ status: number; grpcStatus: string; grpcMessage: string }>((resolve, reject) => {
      const session = connectHttp2(`http://127.0.0.1:${port}`);
      session.on("error", reject);
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": contentType,
        te: "trailers",
      });
      let status = 0;
      let trailers: Record<string, unknown> = {};
      stream.on("response", (headers) => {
        status = Number(headers[":status"]);
        // A trailers-only answer carries the status in its headers.
        if (headers["grpc-status"] !== undefined) trailers = headers;
      });
      stream.on("trailers", (t) => trailers = t);
      stream.on("data", () => {});
      stream.on("error", reject);
      stream.on("close", () => {
        session.close();
        resolve({
          status,
          grpcStatus: String(trailers["grpc-status"]),
          grpcMessage: decodeURIComponent(String(trailers["grpc-message"] ?? "")),
        });
      });
      stream.end(body);
    }),
    10_000,
    `gRPC ${path}`,
  );
}

Deno.test("undecodable request messages get invalid_argument in every protocol", async () => {
  await using stack = stopping(await startAdversary({ grpc: true }));
  // Connect unary, binary: 400 with the Connect error JSON.
  const unary = await answerOf(stack.port, http1(LIST, "application/proto", GARBAGE, true));
  assert.match(unary, /^HTTP\/1\.1 400 /, unary);
  assert.match(
    unary,
    /\{"code":"invalid_argument","message":"cannot decode message pushprox\.v1\.ListClientsRequest from binary: premature EOF"\}/,
    unary,
  );
  // Connect unary, JSON.
  const json = await answerOf(stack.port, http1(LIST, "application/json", BAD_JSON, true));
  assert.match(json, /^HTTP\/1\.1 400 /, json);
  assert.match(
    json,
    /"code":"invalid_argument","message":"cannot decode message pushprox\.v1\.ListClientsRequest from JSON: /,
    json,
  );

  // Connect streaming (Poll and Push on the fast path, WatchClients through
  // connect-es): the end-stream message carries the error.
  for (const path of [POLL, PUSH, WATCH]) {
    const answer = await answerOf(
      stack.port,
      http1(path, "application/connect+proto", envelope(0, GARBAGE), true),
    );
    assert.match(answer, /^HTTP\/1\.1 200 /, `${path}: ${answer}`);
    assert.ok(
      answer.includes(
        `{"error":{"code":"invalid_argument","message":"cannot decode message ${
          TYPES[path]
        } from binary: premature EOF"}}`,
      ),
      `${path}: ${answer}`,
    );
  }
  const streamJson = await answerOf(
    stack.port,
    http1(POLL, "application/connect+json", envelope(0, BAD_JSON), true),
  );
  assert.match(streamJson, /"code":"invalid_argument","message":"cannot decode message/);

  // gRPC-Web: the trailer frame in the body.
  for (const path of [LIST, POLL, PUSH]) {
    const answer = await answerOf(
      stack.port,
      http1(path, "application/grpc-web+proto", envelope(0, GARBAGE), false),
    );
    assert.match(answer, /^HTTP\/1\.1 200 /, `${path}: ${answer}`);
    assert.match(answer, /grpc-status: 3\r\n/, `${path}: ${answer}`);
    assert.ok(
      answer.includes(
        `grpc-message: ${
          encodeURIComponent(`cannot decode message ${TYPES[path]} from binary: premature EOF`)
        }`,
      ),
      `${path}: ${answer}`,
    );
  }

  // gRPC on the h2c port.
  for (const path of [LIST, POLL, PUSH]) {
    const answer = await grpcCall(
      stack.grpcPort,
      path,
      "application/grpc",
      envelope(0, GARBAGE),
    );
    assert.deepEqual(answer, {
      status: 200,
      grpcStatus: "3",
      grpcMessage: `cannot decode message ${TYPES[path]} from binary: premature EOF`,
    }, path);
  }
  const grpcJson = await grpcCall(
    stack.grpcPort,
    LIST,
    "application/grpc+json",
    envelope(0, BAD_JSON),
  );
  assert.equal(grpcJson.grpcStatus, "3", grpcJson.grpcMessage);

  assert.equal(await stack.metric("pushprox_proxy_handler_errors_total"), 0);
  await stack.checkAfter("undecodable messages");
});
