import type { Server } from "node:http";
import { useServer } from "graphql-ws/use/ws";
import { GraphQLError, type ExecutionArgs } from "graphql";
import { WebSocketServer, type WebSocket } from "ws";
import type { Viewer } from "../auth/viewer.ts";
import type { App } from "../context.ts";
import type { Yoga } from "./yoga.ts";

type Extra = {
  viewer?: Viewer;
  socket: WebSocket;
};

/** Close code and reason for a connection whose key was revoked (graphql-ws's "Forbidden"). */
export const REVOKED_CLOSE = { code: 4403, reason: "Forbidden: API key revoked" } as const;

/**
 * graphql-ws on the same path as GraphQL over HTTP. The key arrives in `connection_init`
 * (`{"authorization": "Bearer …"}`); a bad key closes the socket with 4403, and so does revoking
 * the key of an open connection (announced over pub/sub; the authenticator also re-checks the
 * keys in use every API_KEY_RECHECK_INTERVAL, in case an announcement is lost). Operations run
 * through yoga's envelop, so the same plugins and limits apply as over HTTP.
 */
export function attachGraphqlWs(httpServer: Server, yoga: Yoga, app: App): { close(): Promise<void> } {
  const wss = new WebSocketServer({ server: httpServer, path: yoga.graphqlEndpoint });
  /** Open, authenticated connections by the id of the key that opened them. */
  const byKey = new Map<string, Set<WebSocket>>();
  const track = (keyId: string, socket: WebSocket) => {
    if (socket.readyState !== socket.OPEN) return; // closed while authenticating: nothing to revoke
    let sockets = byKey.get(keyId);
    if (!sockets) byKey.set(keyId, (sockets = new Set()));
    sockets.add(socket);
    const unwatch = app.auth.watch(keyId);
    socket.once("close", () => {
      unwatch();
      sockets.delete(socket);
      if (sockets.size === 0 && byKey.get(keyId) === sockets) byKey.delete(keyId);
    });
  };
  const closeKey = (keyId: string) => {
    const sockets = byKey.get(keyId);
    if (!sockets) return;
    byKey.delete(keyId);
    for (const socket of sockets) socket.close(REVOKED_CLOSE.code, REVOKED_CLOSE.reason);
    app.log.info({ keyId, connections: sockets.size }, "closed the WebSocket connections of a revoked key");
  };
  const stopListening = app.auth.onRevoked(closeKey);
  const disposable = useServer<Record<string, unknown> | undefined, Extra>(
    {
      execute: (args) => (args.rootValue as { execute: (a: ExecutionArgs) => unknown }).execute(args) as never,
      subscribe: (args) => (args.rootValue as { subscribe: (a: ExecutionArgs) => unknown }).subscribe(args) as never,
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        const authorization = params.authorization ?? params.Authorization;
        const actAs = params.accountId ?? params["x-account-id"];
        try {
          const viewer = await app.auth.authenticate(
            typeof authorization === "string" ? authorization : undefined,
            typeof actAs === "string" ? actAs : undefined,
          );
          ctx.extra.viewer = viewer;
          track(viewer.keyId, ctx.extra.socket);
          return true;
        } catch {
          return false;
        }
      },
      onSubscribe: async (ctx, _id, payload) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: (ctx.extra as { request?: unknown }).request,
          socket: (ctx.extra as { socket?: unknown }).socket,
          params: payload,
          viewer: ctx.extra.viewer,
        });
        let document: ReturnType<typeof parse>;
        try {
          document = parse(payload.query);
        } catch (error) {
          // A syntax error answers this operation only; the connection and its others go on.
          return [error instanceof GraphQLError ? error : new GraphQLError(String((error as Error).message))];
        }
        const args: ExecutionArgs = {
          schema,
          operationName: payload.operationName ?? null,
          document,
          variableValues: payload.variables ?? null,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length) return errors;
        return args;
      },
    },
    wss,
  );
  return {
    async close() {
      stopListening();
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
