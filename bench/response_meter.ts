/**
 * Following an HTTP/1.1 response through the reads that carry it, without
 * keeping its bytes: what the benchmark's scrapers (bench/load.ts,
 * bench/alternate.ts) read responses with, so that reading costs them
 * little and the programs measured are not left idle between scrapes by a
 * slow scraper.
 *
 * @module
 */

const HEAD_LIMIT = 16 * 1024;
const decoder = new TextDecoder();

/**
 * Follows one HTTP/1.1 response through the reads that carry it, without
 * keeping its bytes: the head (status must be 200), then a body framed by
 * `Content-Length` or chunked encoding. Feed every read to
 * {@linkcode ResponseMeter.feed} until it returns true.
 */
export class ResponseMeter {
  #head = new Uint8Array(HEAD_LIMIT);
  #headLength = 0;
  #inHead = true;
  #remaining = 0;
  #chunked = false;
  #state: "size" | "data" | "crlf" | "trailer" = "size";
  #line = "";
  #crlfLeft = 0;
  /** Body bytes seen so far (chunk framing excluded). */
  bodyBytes = 0;
  /** Whether the head said `Connection: close` (the server ends the connection after it). */
  closes = false;

  /**
   * Takes the next bytes of the response.
   *
   * @param bytes One read.
   * @returns Whether the response ended with these bytes.
   * @throws {Error} On a status other than 200, a head over 16 KiB, a body
   * without framing, or bytes past the response's end.
   */
  feed(bytes: Uint8Array): boolean {
    let at = 0;
    if (this.#inHead) {
      at = this.#takeHead(bytes);
      if (at < 0) return false;
    }
    const done = this.#chunked ? this.#takeChunked(bytes, at) : this.#takeLength(bytes, at);
    return done;
  }

  #takeHead(bytes: Uint8Array): number {
    const room = HEAD_LIMIT - this.#headLength;
    const take = Math.min(room, bytes.length);
    this.#head.set(bytes.subarray(0, take), this.#headLength);
    const before = this.#headLength;
    this.#headLength += take;
    const end = findHeadEnd(this.#head, Math.max(0, before - 3), this.#headLength);
    if (end < 0) {
      if (this.#headLength === HEAD_LIMIT) throw new Error("Response head over 16 KiB");
      return -1;
    }
    const head = decoder.decode(this.#head.subarray(0, end));
    if (!/^HTTP\/1\.1 200 /.test(head)) {
      throw new Error(`Expected 200, got: ${head.slice(0, 200)}`);
    }
    this.#inHead = false;
    this.closes = /\r\nconnection: *close/i.test(head);
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (length) this.#remaining = Number(length[1]);
    else if (/\r\ntransfer-encoding: *chunked/i.test(head)) this.#chunked = true;
    else throw new Error(`Response without Content-Length or chunked encoding: ${head}`);
    return end - before;
  }

  #takeLength(bytes: Uint8Array, at: number): boolean {
    const n = bytes.length - at;
    if (n > this.#remaining) throw new Error("Bytes past the response's Content-Length");
    this.#remaining -= n;
    this.bodyBytes += n;
    return this.#remaining === 0;
  }

  #takeChunked(bytes: Uint8Array, at: number): boolean {
    while (at < bytes.length) {
      if (this.#state === "data") {
        const n = Math.min(this.#remaining, bytes.length - at);
        this.#remaining -= n;
        this.bodyBytes += n;
        at += n;
        if (this.#remaining === 0) {
          this.#state = "crlf";
          this.#crlfLeft = 2;
        }
      } else if (this.#state === "crlf") {
        at++;
        if (--this.#crlfLeft === 0) this.#state = "size";
      } else {
        const byte = bytes[at++]!;
        if (byte !== 10) {
          if (this.#line.length > 1024) throw new Error("Chunk line over 1 KiB");
          this.#line += String.fromCharCode(byte);
          continue;
        }
        const line = this.#line.replace(/\r$/, "");
        this.#line = "";
        if (this.#state === "trailer") {
          if (line !== "") continue;
          if (at !== bytes.length) throw new Error("Bytes past the response's last chunk");
          return true;
        }
        const size = parseInt(line.split(";")[0]!, 16);
        if (!Number.isFinite(size)) throw new Error(`Bad chunk size line: ${line}`);
        if (size === 0) this.#state = "trailer";
        else {
          this.#state = "data";
          this.#remaining = size;
        }
      }
    }
    return false;
  }
}

function findHeadEnd(head: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 3 < to; i++) {
    if (head[i] === 13 && head[i + 1] === 10 && head[i + 2] === 13 && head[i + 3] === 10) {
      return i + 4;
    }
  }
  return -1;
}
