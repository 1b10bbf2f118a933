/**
 * The push body of upstream PushProx's wire protocol: an HTTP/1.x response
 * as Go's `http.Response.Write` writes it. Read incrementally, the way Go's
 * `http.ReadResponse` frames it (chunked, Content-Length, or up to the end of
 * the push), so that a large scrape is relayed while it arrives instead of
 * being buffered.
 *
 * @module
 */

/** Status line and header fields of a pushed response. */
export interface LegacyResponseHead {
  /** Protocol major version; 0 for upstream's synthetic error responses. */
  major: number;
  minor: number;
  status: number;
  /** The reason phrase, possibly empty. */
  reason: string;
  /** Header fields in arrival order, names as sent. */
  headers: [string, string][];
}

/** A pushed response whose body has not been read yet. */
export interface LegacyResponse extends LegacyResponseHead {
  /**
   * Opens the body, framed as Go frames a response to `requestMethod`: none
   * for HEAD and for 1xx, 204 and 304; otherwise chunked, Content-Length or
   * everything up to the end of the push. Call it once; the body throws a
   * SyntaxError when the framing is broken or the push ends early.
   */
  body(requestMethod?: string): AsyncIterable<Uint8Array>;
}

/** Options for {@linkcode readLegacyResponse}. */
export interface ReadLegacyResponseOptions {
  /** Largest status line plus header block, in bytes. @default {1048576} */
  maxHeaderBytes?: number;
}

const EMPTY = new Uint8Array(0);
const MAX_CHUNK_LINE = 4096;

/**
 * Reads the status line and header fields of a pushed response from
 * `source`, and nothing more.
 *
 * @param source The push body as it arrives.
 * @param options Size limit of the head.
 * @returns The head and a way to open the body.
 * @throws {SyntaxError} When the head is malformed, too large or incomplete.
 */
export async function readLegacyResponse(
  source: AsyncIterable<Uint8Array>,
  options: ReadLegacyResponseOptions = {},
): Promise<LegacyResponse> {
  const reader = new ByteReader(source);
  let budget = options.maxHeaderBytes ?? 1 << 20;
  const line = async (what: string): Promise<string> => {
    const text = await reader.readLine(budget);
    if (text === null) {
      throw new SyntaxError(`Cannot parse the pushed response: it ends in ${what}`);
    }
    budget -= text.length + 2;
    return text;
  };

  const statusLine = await line("the status line");
  const match = /^HTTP\/(\d{1,7})\.(\d{1,7}) +(\d{3})(?: (.*))?$/.exec(statusLine);
  if (match === null) {
    throw new SyntaxError(
      `Cannot parse the pushed response: malformed status line ${JSON.stringify(statusLine)}`,
    );
  }
  const headers: [string, string][] = [];
  for (;;) {
    const text = await line("the header block");
    if (text === "") break;
    if (text[0] === " " || text[0] === "\t") {
      // An obsolete folded line continues the previous field.
      const last = headers.at(-1);
      if (last === undefined) {
        throw new SyntaxError("Cannot parse the pushed response: malformed header initial line");
      }
      last[1] = `${last[1]} ${trimBlanks(text)}`.trim();
      continue;
    }
    const colon = text.indexOf(":");
    const name = colon > 0 ? text.slice(0, colon) : "";
    if (!/^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$/.test(name)) {
      throw new SyntaxError(
        `Cannot parse the pushed response: malformed header line ${JSON.stringify(text)}`,
      );
    }
    headers.push([name, trimBlanks(text.slice(colon + 1))]);
  }

  const head: LegacyResponseHead = {
    major: Number(match[1]),
    minor: Number(match[2]),
    status: Number(match[3]),
    reason: match[4] ?? "",
    headers,
  };
  let opened = false;
  return {
    ...head,
    body(requestMethod = "GET") {
      if (opened) throw new TypeError("Cannot open the body twice");
      opened = true;
      return openBody(reader, head, requestMethod);
    },
  };
}

function trimBlanks(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, "");
}

function fieldValues(head: LegacyResponseHead, name: string): string[] {
  return head.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

function openBody(
  reader: ByteReader,
  head: LegacyResponseHead,
  requestMethod: string,
): AsyncIterable<Uint8Array> {
  const s = head.status;
  if (requestMethod.toUpperCase() === "HEAD" || (s >= 100 && s < 200) || s === 204 || s === 304) {
    return empty();
  }
  // Go ignores Transfer-Encoding before HTTP/1.1.
  const encodings = head.major > 1 || (head.major === 1 && head.minor >= 1)
    ? fieldValues(head, "transfer-encoding")
    : [];
  if (encodings.length > 0) {
    if (encodings.length !== 1 || encodings[0]!.toLowerCase() !== "chunked") {
      return failing(
        new SyntaxError(
          `Cannot read the pushed body: unsupported transfer encoding ${
            JSON.stringify(encodings.join(", "))
          }`,
        ),
      );
    }
    return chunked(reader);
  }
  const lengths = [...new Set(fieldValues(head, "content-length").map((v) => v.trim()))];
  if (lengths.length > 1) {
    return failing(new SyntaxError("Cannot read the pushed body: conflicting Content-Length"));
  }
  if (lengths.length === 1) {
    if (!/^\d{1,15}$/.test(lengths[0]!)) {
      return failing(
        new SyntaxError(`Cannot read the pushed body: bad Content-Length ${lengths[0]}`),
      );
    }
    return sized(reader, Number(lengths[0]));
  }
  return untilEnd(reader);
}

async function* empty(): AsyncGenerator<Uint8Array> {}

// deno-lint-ignore require-yield
async function* failing(error: Error): AsyncGenerator<Uint8Array> {
  throw error;
}

async function* sized(reader: ByteReader, length: number): AsyncGenerator<Uint8Array> {
  let left = length;
  while (left > 0) {
    const chunk = await reader.read(left);
    if (chunk === null) {
      throw new SyntaxError(
        `Cannot read the pushed body: the push ended after ${length - left} of ${length} bytes`,
      );
    }
    left -= chunk.byteLength;
    yield chunk;
  }
}

async function* untilEnd(reader: ByteReader): AsyncGenerator<Uint8Array> {
  for (;;) {
    const chunk = await reader.read(Infinity);
    if (chunk === null) return;
    yield chunk;
  }
}

async function* chunked(reader: ByteReader): AsyncGenerator<Uint8Array> {
  for (;;) {
    const line = await reader.readLine(MAX_CHUNK_LINE);
    if (line === null) {
      throw new SyntaxError("Cannot read the pushed body: the push ended inside chunked data");
    }
    const sizeText = trimBlanks(line.split(";", 1)[0]!);
    if (!/^[0-9a-fA-F]{1,16}$/.test(sizeText)) {
      throw new SyntaxError(
        `Cannot read the pushed body: malformed chunk size ${JSON.stringify(line)}`,
      );
    }
    const size = parseInt(sizeText, 16);
    if (!Number.isSafeInteger(size)) {
      throw new SyntaxError("Cannot read the pushed body: chunk too large");
    }
    if (size === 0) {
      // Trailer fields are read and dropped; a missing final CRLF is forgiven.
      for (;;) {
        const trailer = await reader.readLine(MAX_CHUNK_LINE);
        if (trailer === null || trailer === "") return;
      }
    }
    yield* sized(reader, size);
    const end = await reader.readLine(2);
    if (end !== "") {
      throw new SyntaxError("Cannot read the pushed body: malformed chunked encoding");
    }
  }
}

/** Buffered reads of lines and byte runs from an async byte source. */
class ByteReader {
  #iterator: AsyncIterator<Uint8Array>;
  #buffer: Uint8Array = EMPTY;
  #ended = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#iterator = source[Symbol.asyncIterator]();
  }

  /** Pulls one more piece from the source; false at its end. */
  async #fill(): Promise<boolean> {
    if (this.#ended) return false;
    const next = await this.#iterator.next();
    if (next.done) {
      this.#ended = true;
      return false;
    }
    const piece = next.value;
    if (this.#buffer.byteLength === 0) {
      this.#buffer = piece;
    } else {
      const joined = new Uint8Array(this.#buffer.byteLength + piece.byteLength);
      joined.set(this.#buffer);
      joined.set(piece, this.#buffer.byteLength);
      this.#buffer = joined;
    }
    return true;
  }

  /**
   * Reads one line ending in LF, without its CRLF or LF, as Latin-1 so that
   * every byte survives. Null at the end of the source, even mid-line.
   * Throws when the line is longer than `limit` bytes.
   */
  async readLine(limit: number): Promise<string | null> {
    let scanned = 0;
    for (;;) {
      const at = this.#buffer.indexOf(0x0a, scanned);
      if (at >= 0) {
        if (at > limit + 1) break;
        const end = at > 0 && this.#buffer[at - 1] === 0x0d ? at - 1 : at;
        const line = latin1(this.#buffer.subarray(0, end));
        this.#buffer = this.#buffer.subarray(at + 1);
        return line;
      }
      scanned = this.#buffer.byteLength;
      if (scanned > limit + 1) break;
      if (!await this.#fill()) return null;
    }
    throw new SyntaxError(`Cannot parse the pushed response: a line is longer than ${limit} bytes`);
  }

  /** Reads up to `max` bytes, whatever is at hand first; null at the end. */
  async read(max: number): Promise<Uint8Array | null> {
    if (this.#buffer.byteLength === 0 && !await this.#fill()) return null;
    const take = Math.min(max, this.#buffer.byteLength);
    const chunk = this.#buffer.subarray(0, take);
    this.#buffer = this.#buffer.subarray(take);
    return chunk;
  }
}

function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return text;
}
