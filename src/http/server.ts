import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { App } from "../context.ts";
import { attachGraphqlWs } from "./ws.ts";
import { createYogaApp } from "./yoga.ts";

export interface ServerHandle {
  /** Listens on `port` (0 = any free port); resolves with the bound URL of the GraphQL endpoint. */
  start(port?: number, host?: string): Promise<{ url: string; port: number }>;
  /** Stops taking connections, closes WebSockets and idle keep-alive sockets. */
  stop(): Promise<void>;
}

export interface ServerOptions {
  /** Serve GraphQL and REST; false for a worker, which answers only /healthz and /readyz. */
  api: boolean;
  /** Extra readiness checks (database is always checked). */
  ready?: () => Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** One node:http server: GraphQL over HTTP and WebSocket on /graphql, /healthz, /readyz. */
export function buildServer(app: App, options: ServerOptions = { api: true }): ServerHandle {
  const yoga = options.api ? createYogaApp(app) : undefined;

  async function health(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = req.url?.split("?")[0];
    if (path === "/healthz") {
      json(res, 200, { status: "ok" });
      return true;
    }
    if (path === "/readyz") {
      try {
        await app.db.$queryRaw`SELECT 1`;
        await options.ready?.();
        json(res, 200, { status: "ready" });
      } catch (error) {
        app.log.warn({ err: error }, "readiness check failed");
        json(res, 503, { status: "unavailable" });
      }
      return true;
    }
    return false;
  }

  const server = createServer((req, res) => {
    health(req, res)
      .then((handled) => {
        if (handled) return;
        if (yoga) return yoga.requestListener(req, res);
        json(res, 404, { error: "Not found" });
      })
      .catch((error: unknown) => {
        app.log.error({ err: error }, "request failed");
        if (!res.headersSent) json(res, 500, { error: "Internal server error" });
        else res.destroy();
      });
  });
  const ws = yoga ? attachGraphqlWs(server, yoga, app) : undefined;

  return {
    start(port = app.config.PORT, host = app.config.HOST) {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const bound = (server.address() as AddressInfo).port;
          const shown = host === "0.0.0.0" || host === "::" ? "localhost" : host.includes(":") ? `[${host}]` : host;
          resolve({ url: `http://${shown}:${bound}/graphql`, port: bound });
        });
      });
    },
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await ws?.close();
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), 5_000);
      await closed;
      clearTimeout(force);
    },
  };
}
