import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { sendNodeResponse } from "@whatwg-node/server";
import type { App } from "../context.ts";
import { errorCode, ERROR_STATUS } from "../lib/errors.ts";
import { mediaType, readBody } from "./body.ts";
import { createRestHandler } from "./rest.ts";
import { attachGraphqlWs } from "./ws.ts";
import { createYogaApp, type Yoga } from "./yoga.ts";

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

/**
 * GraphQL over HTTP. POST bodies are read here first, so the 1 MiB limit holds for declared and
 * streamed bodies alike; then yoga answers.
 */
async function handleGraphql(yoga: Yoga, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== "POST") {
    await yoga.requestListener(req, res);
    return;
  }
  if (mediaType(req) !== "application/json") {
    // form and text bodies are what a cross-site page can send without a preflight: refused
    req.resume();
    json(res, 415, {
      errors: [{ message: "Content-Type must be application/json", extensions: { code: "UNSUPPORTED_MEDIA_TYPE" } }],
    });
    return;
  }
  let body: Buffer;
  try {
    body = await readBody(req);
  } catch (error) {
    const code = errorCode(error);
    if (!code) throw error;
    json(res, ERROR_STATUS[code], { errors: [{ message: (error as Error).message, extensions: { code } }] });
    return;
  }
  const headers = new yoga.fetchAPI.Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    // the body travels already read, in the server context (yoga.ts parses it)
    if (value === undefined || name === "content-length" || name === "transfer-encoding") continue;
    for (const item of Array.isArray(value) ? value : [value]) headers.append(name, item);
  }
  const request = new yoga.fetchAPI.Request(`http://${req.headers.host ?? "localhost"}${req.url ?? "/graphql"}`, {
    method: "POST",
    headers,
  });
  const response = await yoga.fetch(request, { body });
  await sendNodeResponse(response, res, req, false);
}

/** One node:http server: GraphQL over HTTP and WebSocket on /graphql, REST on /api/v1, /healthz, /readyz. */
export function buildServer(app: App, options: ServerOptions = { api: true }): ServerHandle {
  const yoga = options.api ? createYogaApp(app) : undefined;
  const rest = options.api ? createRestHandler(app) : undefined;

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
        const url = new URL(req.url ?? "/", "http://localhost");
        if (rest && (url.pathname === "/api/v1" || url.pathname.startsWith("/api/v1/"))) return rest(req, res, url);
        if (yoga && url.pathname === yoga.graphqlEndpoint) return handleGraphql(yoga, req, res);
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
