import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body as received. */
  body: string;
  receivedAt: number;
}

/** Decides the answer to the n-th request (1-based); the default answers 200. */
export type Responder = (request: ReceivedRequest, n: number, res: ServerResponse) => void | Promise<void>;

export interface Receiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Resolves once `count` requests (in total) have arrived; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  respond(responder: Responder): void;
  close(): Promise<void>;
}

/** A real webhook receiver on 127.0.0.1, port 0, recording every request (svix TestReceiver). */
export async function startReceiver(responder?: Responder): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const waiters: Array<{ count: number; resolve: () => void }> = [];
  let answer: Responder = responder ?? ((_req, _n, res) => void res.writeHead(200).end("ok"));

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const request: ReceivedRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        receivedAt: Date.now(),
      };
      requests.push(request);
      Promise.resolve(answer(request, requests.length, res)).catch(() => res.destroy());
      for (const waiter of [...waiters]) {
        if (requests.length >= waiter.count) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    requests,
    waitFor(count, timeoutMs = 15_000) {
      if (requests.length >= count) return Promise.resolve(requests);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`receiver got ${requests.length} of ${count} requests within ${timeoutMs}ms`)),
          timeoutMs,
        );
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve(requests);
          },
        });
      });
    },
    respond(next) {
      answer = next;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface RoutedReceiver extends Receiver {
  /** Responders by request path; a path with none answers 200 "ok". */
  routes: Map<string, Responder>;
}

/** One receiver for many webhooks: each gets its own path, and its own way of answering. */
export async function startRoutedReceiver(): Promise<RoutedReceiver> {
  const routes = new Map<string, Responder>();
  const receiver = await startReceiver((request, n, res) => {
    const route = routes.get(request.path);
    if (route) return route(request, n, res);
    res.writeHead(200).end("ok");
  });
  return Object.assign(receiver, { routes });
}
