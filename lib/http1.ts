/**
 * The client's one HTTP/1.1 client on `Deno.connect`: a strict response
 * reader (status line, header block with a size limit, bodies framed by
 * Content-Length, chunked transfer coding or the end of the connection;
 * HEAD/204/304 have none), a body reader that removes chunked coding in
 * place and reads only as fast as it is asked, and a bounded keep-alive
 * pool. Used by native push (client/transport/native_push.ts), native scrape
 * (client/scrape/native_scrape.ts) and the modules' http backend
 * (client/modules/backend_http.ts), so a parsing fix lands in one place.
 *
 * This module is the entry; the parts live beside it: the byte reader and
 * Http1Error (lib/http1_byte_reader.ts), the response head and body framing
 * (lib/http1_head.ts), the body reader (lib/http1_body.ts) and the pool
 * (lib/http1_pool.ts).
 *
 * @module
 */

export { ByteReader, Http1Error, type Http1ErrorKind, type ReadFn } from "./http1_byte_reader.ts";
export {
  type BodyFraming,
  bodyFraming,
  readResponseHead,
  readResponseHeadNow,
  type ResponseHead,
  ResponseHeadCache,
  reusable,
} from "./http1_head.ts";
export {
  BodyReader,
  type BodyReaderOptions,
  chunkFrame,
  chunkFrameInPlace,
  chunkSizeLineLength,
  LAST_CHUNK,
  readWholeBody,
  readWholeBodyNow,
  writeChunkSizeLine,
} from "./http1_body.ts";
export {
  Http1Pool,
  type Http1PoolOptions,
  type Http1RequestOptions,
  type Http1Response,
} from "./http1_pool.ts";
