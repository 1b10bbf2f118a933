import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ClientService } from "../../gen/pushprox/v1/pushprox_pb.ts";
import { describePollError } from "./poll_error.ts";

/** What connect-node really throws when nginx answers instead of the proxy. */
async function pollAgainst(status: number, contentType: string, body: string): Promise<unknown> {
  const server = createServer((_req, res) => {
    res.writeHead(status, { "content-type": contentType });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const client = createClient(
      ClientService,
      createConnectTransport({
        baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        httpVersion: "1.1",
        useBinaryFormat: true,
      }),
    );
    for await (const _ of client.poll({ fqdn: "a" })) { /* never */ }
    return null;
  } catch (error) {
    return error;
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

const NGINX_502 =
  "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

Deno.test("describePollError() names an HTML 502 from a load balancer, never data", async () => {
  const error = await pollAgainst(502, "text/html", NGINX_502);
  assert.equal(
    describePollError(error),
    "proxy answered HTTP 502 text/html instead of a Connect stream — a load balancer or proxy in between?",
  );
  const timeout = await pollAgainst(504, "text/html; charset=utf-8", "<html>504</html>");
  assert.match(describePollError(timeout), /^proxy answered HTTP 504 text\/html instead/);
  const notFound = await pollAgainst(404, "text/plain", "no");
  assert.match(describePollError(notFound), /HTTP 404 text\/plain .* --proxy-url path/);
});

Deno.test("describePollError() names a 200 that is not a Connect stream (captive portal)", async () => {
  const error = await pollAgainst(200, "text/html", "<html>login</html>");
  assert.match(
    describePollError(error),
    /^proxy answered HTTP 200 text\/html instead of a Connect/,
  );
});

Deno.test("describePollError() keeps Connect errors and socket errors readable", () => {
  assert.equal(
    describePollError(new ConnectError("The proxy is shutting down", Code.Unavailable)),
    "[unavailable] The proxy is shutting down",
  );
  const refused = Object.assign(new Error("connect failed"), { code: "ECONNREFUSED" });
  assert.equal(describePollError(refused), "connect failed (ECONNREFUSED)");
  assert.equal(describePollError("x"), "x");
});
