/**
 * Poll and Push through a connect-es client: the fallback path's calls
 * (client/transport/proxy_transport.ts makes the client), and the form the
 * poll loop takes when it is given a client instead of streams.
 *
 * @module
 */

import type { Client } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  ClientService,
  PushRequestSchema,
  ScrapeResponseHeadSchema,
} from "../../gen/pushprox/v1/pushprox_pb.ts";
import type { PollStream } from "./native_poll.ts";
import type { PushSender } from "./native_push.ts";

/**
 * Poll through a connect-es client.
 *
 * @param client A Connect client of the proxy's ClientService.
 * @returns The stream opener.
 */
export function pollThrough(client: Client<typeof ClientService>): PollStream {
  return (request, signal) => client.poll(request, { signal });
}

/**
 * Push through a connect-es client.
 *
 * @param client A Connect client of the proxy's ClientService.
 * @returns The sender.
 */
export function pushThrough(client: Client<typeof ClientService>): PushSender {
  return async (head, body, signal) => {
    await client.push(pushMessages(head, body), { signal });
  };
}

async function* pushMessages(
  head: MessageInitShape<typeof ScrapeResponseHeadSchema>,
  body: AsyncIterable<Uint8Array> | null,
): AsyncGenerator<MessageInitShape<typeof PushRequestSchema>> {
  yield { message: { case: "head", value: head } };
  if (body === null) return;
  for await (const chunk of body) {
    yield { message: { case: "bodyChunk", value: chunk } };
  }
}
