import type { Server } from "node:http";
import { useServer } from "graphql-ws/use/ws";
import { GraphQLError, type ExecutionArgs } from "graphql";
import { WebSocketServer } from "ws";
import type { Viewer } from "../auth/viewer.ts";
import type { App } from "../context.ts";
import type { Yoga } from "./yoga.ts";

type Extra = {
  viewer?: Viewer;
};

/**
 * graphql-ws on the same path as GraphQL over HTTP. The key arrives in `connection_init`
 * (`{"authorization": "Bearer …"}`); a bad key closes the socket with 4403. Operations run
 * through yoga's envelop, so the same plugins and limits apply as over HTTP.
 */
export function attachGraphqlWs(httpServer: Server, yoga: Yoga, app: App): { close(): Promise<void> } {
  const wss = new WebSocketServer({ server: httpServer, path: yoga.graphqlEndpoint });
  const disposable = useServer<Record<string, unknown> | undefined, Extra>(
    {
      execute: (args) => (args.rootValue as { execute: (a: ExecutionArgs) => unknown }).execute(args) as never,
      subscribe: (args) => (args.rootValue as { subscribe: (a: ExecutionArgs) => unknown }).subscribe(args) as never,
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        const authorization = params.authorization ?? params.Authorization;
        const actAs = params.accountId ?? params["x-account-id"];
        try {
          ctx.extra.viewer = await app.auth.authenticate(
            typeof authorization === "string" ? authorization : undefined,
            typeof actAs === "string" ? actAs : undefined,
          );
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
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
