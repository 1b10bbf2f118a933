import assert from "node:assert/strict";
import {
  compress,
  concat,
  counterFamily,
  delimited,
  histogramFamily,
  OPENMETRICS_CONTENT_TYPE,
  PROTOBUF_CONTENT_TYPE,
  readAll,
  streamOf,
  TEXT_CONTENT_TYPE,
} from "./_testing.ts";
import { VerificationError } from "./verification_error.ts";
import { verifyStream, type VerifyStreamOptions } from "./verify_stream.ts";

const ENCODER = new TextEncoder();
const TEXT_SAMPLE = await Deno.readFile(
  new URL("./testdata/text_valid.prom", import.meta.url),
);
const OPENMETRICS_SAMPLE = await Deno.readFile(
  new URL("./testdata/openmetrics_valid.om", import.meta.url),
);
const PROTOBUF_SAMPLE = delimited(
  counterFamily("a_total", [1, 2, 3]),
  histogramFamily("b_seconds"),
);

const SAMPLES = [
  ["text", TEXT_SAMPLE, TEXT_CONTENT_TYPE],
  ["openmetrics", OPENMETRICS_SAMPLE, OPENMETRICS_CONTENT_TYPE],
  ["protobuf", PROTOBUF_SAMPLE, PROTOBUF_CONTENT_TYPE],
] as const;

function chunksOf(bytes: Uint8Array, size: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += size) {
    chunks.push(bytes.subarray(at, at + size));
  }
  return chunks;
}

async function verificationFailure(
  stream: ReadableStream<Uint8Array>,
): Promise<VerificationError> {
  try {
    await readAll(stream);
  } catch (error) {
    assert.ok(error instanceof VerificationError, `got ${error}`);
    return error;
  }
  assert.fail("expected the stream to error");
}

/** Waits (briefly) until the condition holds; pipes settle asynchronously. */
async function eventually(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  assert.ok(condition());
}

/** A source that never closes by itself and records cancellation. */
function trackedSource(chunks: Uint8Array[]): {
  stream: ReadableStream<Uint8Array>;
  cancelled: () => boolean;
} {
  let cancelled = false;
  let index = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      // Stays open after the last chunk, so only a cancel can end it.
      if (index < chunks.length) controller.enqueue(chunks[index++]!);
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, cancelled: () => cancelled };
}

Deno.test("verifyStream() passes valid bodies through unchanged", async () => {
  for (const [name, body, contentType] of SAMPLES) {
    const chunks = chunksOf(body, 97);
    const output: Uint8Array[] = [];
    for await (
      const chunk of verifyStream(streamOf(...chunks), { contentType })
    ) {
      output.push(chunk);
    }
    assert.deepEqual(concat(...output), body, name);
    assert.equal(output.length, chunks.length, name);
    assert.equal(output[0], chunks[0], `${name}: chunks are not copied`);
  }
});

Deno.test("verifyStream() errors the stream and cancels the source on an invalid body", async () => {
  const source = trackedSource([
    ENCODER.encode("ok 1\n"),
    ENCODER.encode("<html>\n"),
    ENCODER.encode("never read\n"),
  ]);
  const error = await verificationFailure(
    verifyStream(source.stream, { contentType: TEXT_CONTENT_TYPE }),
  );
  assert.equal(error.message, 'line 2: invalid metric name "<html>"');
  assert.ok(source.cancelled());
});

Deno.test("verifyStream() holds back the last chunk until the whole body verified", async () => {
  const chunks = [
    ENCODER.encode("# TYPE up gauge\n"),
    ENCODER.encode("up 1\n"),
    ENCODER.encode("down 0\n"), // no "# EOF" follows
  ];
  const reader = verifyStream(streamOf(...chunks), {
    contentType: OPENMETRICS_CONTENT_TYPE,
  }).getReader();
  const received: Uint8Array[] = [];
  let failure: unknown;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      received.push(value);
    }
  } catch (error) {
    failure = error;
  }
  assert.ok(failure instanceof VerificationError);
  assert.match(failure.message, /does not end with "# EOF"/);
  assert.deepEqual(received, chunks.slice(0, 2));
});

Deno.test("verifyStream() verifies gzip bodies and forwards the compressed bytes", async () => {
  for (const [name, body, contentType] of SAMPLES) {
    const gzipped = await compress(body);
    for (const size of [1, 13, gzipped.length]) {
      const output = await readAll(
        verifyStream(streamOf(...chunksOf(gzipped, size)), {
          contentType,
          contentEncoding: "gzip",
        }),
      );
      assert.deepEqual(output, gzipped, `${name}, chunks of ${size}`);
    }
  }
});

Deno.test("verifyStream() verifies deflate and x-gzip bodies", async () => {
  const deflated = await compress(TEXT_SAMPLE, "deflate");
  assert.deepEqual(
    await readAll(
      verifyStream(streamOf(deflated), { contentEncoding: "deflate" }),
    ),
    deflated,
  );
  const gzipped = await compress(TEXT_SAMPLE);
  assert.deepEqual(
    await readAll(
      verifyStream(streamOf(gzipped), { contentEncoding: "X-GZIP" }),
    ),
    gzipped,
  );
});

Deno.test("verifyStream() reports malformed content inside gzip", async () => {
  const gzipped = await compress(ENCODER.encode("ok 1\nnot valid\n"));
  const error = await verificationFailure(
    verifyStream(streamOf(...chunksOf(gzipped, 5)), {
      contentEncoding: "gzip",
    }),
  );
  assert.equal(error.kind, "malformed");
  assert.equal(
    error.message,
    'line 2: invalid value "valid" for metric "not": not a number',
  );
});

Deno.test("verifyStream() reports corrupt and truncated gzip as encoding errors", async () => {
  const corrupt = await verificationFailure(
    verifyStream(streamOf(ENCODER.encode("up 1\n")), {
      contentEncoding: "gzip",
    }),
  );
  assert.equal(corrupt.kind, "encoding");
  assert.match(corrupt.message, /^invalid gzip data: /);

  const gzipped = await compress(TEXT_SAMPLE);
  const truncated = await verificationFailure(
    verifyStream(streamOf(gzipped.subarray(0, gzipped.length - 10)), {
      contentEncoding: "gzip",
    }),
  );
  assert.equal(truncated.kind, "encoding");
});

Deno.test("verifyStream() rejects unsupported encodings", async () => {
  const source = trackedSource([ENCODER.encode("up 1\n")]);
  const error = await verificationFailure(
    verifyStream(source.stream, { contentEncoding: "br" }),
  );
  assert.equal(error.kind, "encoding");
  assert.equal(
    error.message,
    'cannot verify a body with Content-Encoding "br"',
  );
  await eventually(source.cancelled);
  // identity and empty values mean "not encoded".
  for (const contentEncoding of ["identity", "", null, undefined]) {
    await readAll(
      verifyStream(streamOf(ENCODER.encode("up 1\n")), { contentEncoding }),
    );
  }
});

Deno.test("verifyStream() bounds decompressed bytes with maxBytes", async () => {
  const line = "node_load1 0.5\n";
  const body = ENCODER.encode(line.repeat(200_000)); // 3 MB, compresses to KBs
  const gzipped = await compress(body);
  assert.ok(gzipped.length < 100_000);
  const options: VerifyStreamOptions = {
    contentEncoding: "gzip",
    maxBytes: 1024 * 1024,
  };
  const error = await verificationFailure(
    verifyStream(streamOf(...chunksOf(gzipped, 1024)), options),
  );
  assert.equal(error.kind, "too_large");
  assert.equal(
    error.message,
    "body exceeds the verification limit of 1048576 bytes",
  );
});

Deno.test("verifyStream() releases everything when the consumer cancels", async () => {
  for (const contentEncoding of [undefined, "gzip"]) {
    const body = contentEncoding === undefined ? TEXT_SAMPLE : await compress(TEXT_SAMPLE);
    const source = trackedSource(chunksOf(body, 64));
    const reader = verifyStream(source.stream, { contentEncoding })
      .getReader();
    await reader.read();
    await reader.cancel("done");
    await eventually(source.cancelled);
  }
});

// ---- real node_exporter output ------------------------------------------------

const NODE_EXPORTER = "/usr/bin/prometheus-node-exporter";
const HAVE_NODE_EXPORTER = (() => {
  try {
    return Deno.statSync(NODE_EXPORTER).isFile;
  } catch {
    return false;
  }
})();
if (!HAVE_NODE_EXPORTER) {
  // deno-lint-ignore no-console
  console.warn(
    `skipping node_exporter tests: ${NODE_EXPORTER} is not installed (apt install prometheus-node-exporter)`,
  );
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Fetches raw response bytes over HTTP/1.0, so gzip stays gzip. */
async function rawGet(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ headers: Headers; body: Uint8Array }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const request = [
    `GET ${path} HTTP/1.0`,
    "Host: 127.0.0.1",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ].join("\r\n");
  await conn.write(ENCODER.encode(request));
  const response = await readAll(conn.readable);
  const split = response.findIndex((_, i) =>
    response[i] === 13 && response[i + 1] === 10 && response[i + 2] === 13 &&
    response[i + 3] === 10
  );
  const head = new TextDecoder().decode(response.subarray(0, split));
  const parsed = new Headers();
  for (const line of head.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    parsed.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return { headers: parsed, body: response.subarray(split + 4) };
}

Deno.test({
  name: "verifyStream() accepts real node_exporter output in every format",
  ignore: !HAVE_NODE_EXPORTER,
  async fn() {
    const port = freePort();
    const child = new Deno.Command(NODE_EXPORTER, {
      args: [
        `--web.listen-address=127.0.0.1:${port}`,
        "--collector.disable-defaults",
        "--collector.cpu",
        "--collector.meminfo",
        "--collector.loadavg",
        "--collector.filesystem",
        "--collector.netdev",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      const url = `http://127.0.0.1:${port}/metrics`;
      for (let attempt = 0;; attempt++) {
        try {
          const response = await fetch(url);
          await response.body?.cancel();
          break;
        } catch (error) {
          if (attempt > 100) throw error;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      const accepts = [
        "text/plain; version=0.0.4",
        "application/openmetrics-text; version=1.0.0",
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
      ];
      const formats = new Set<string | null>();
      for (const accept of accepts) {
        // Deno's fetch decompresses gzip itself (and keeps the
        // Content-Encoding header), so the bytes are already identity.
        const response = await fetch(url, { headers: { accept } });
        const contentType = response.headers.get("content-type");
        formats.add(contentType);
        const body = await readAll(
          verifyStream(response.body!, { contentType }),
        );
        assert.ok(body.length > 1000);

        // The raw, still gzip-encoded bytes.
        const raw = await rawGet(port, "/metrics", {
          accept,
          "accept-encoding": "gzip",
        });
        assert.equal(raw.headers.get("content-encoding"), "gzip");
        const forwarded = await readAll(
          verifyStream(streamOf(...chunksOf(raw.body, 1000)), {
            contentType: raw.headers.get("content-type"),
            contentEncoding: raw.headers.get("content-encoding"),
          }),
        );
        assert.deepEqual(forwarded, raw.body);
      }
      assert.ok(
        [...formats].some((f) => f?.startsWith("application/vnd.google.protobuf")),
        `node_exporter served ${[...formats].join(", ")}`,
      );
    } finally {
      child.kill("SIGTERM");
      await child.status;
    }
  },
});
