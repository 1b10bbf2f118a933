/**
 * protobuf-es's coders for the messages of client/transport/pushprox_codec.ts
 * that its hand coders leave alone. Imported only then: a client whose
 * messages are all of the usual shape never loads protobuf-es or the
 * generated descriptors.
 *
 * @module
 */

import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  PollRequestSchema,
  type PollResponse,
  PollResponseSchema,
  PushRequestSchema,
  type ScrapeResponseHeadSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";

/**
 * `fromBinary(PollResponseSchema, bytes)`.
 *
 * @param bytes The message.
 * @returns The message.
 */
export function decodePollResponseSlow(bytes: Uint8Array): PollResponse {
  return fromBinary(PollResponseSchema, bytes);
}

/**
 * `PushRequest{head}` through protobuf-es.
 *
 * @param head The head.
 * @returns The message's bytes.
 */
export function encodePushHeadSlow(
  head: MessageInitShape<typeof ScrapeResponseHeadSchema>,
): Uint8Array {
  return toBinary(
    PushRequestSchema,
    create(PushRequestSchema, { message: { case: "head", value: head } }),
  );
}

/**
 * A PollRequest through protobuf-es.
 *
 * @param request The request.
 * @returns The message's bytes.
 */
export function encodePollRequestSlow(
  request: MessageInitShape<typeof PollRequestSchema>,
): Uint8Array {
  return toBinary(PollRequestSchema, create(PollRequestSchema, request));
}
