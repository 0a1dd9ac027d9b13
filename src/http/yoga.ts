import { GraphQLError } from "graphql";
import { createYoga, maskError as defaultMaskError, type YogaServerInstance } from "graphql-yoga";
import { ACT_AS_HEADER, type Viewer } from "../auth/viewer.ts";
import type { App, Context } from "../context.ts";
import { newId } from "../lib/ids.ts";
import { schema } from "../schema/index.ts";

/** What an HTTP request or a WebSocket operation brings to the GraphQL context. */
export interface ServerContext {
  /** Set by the WebSocket layer, which authenticated the connection in `connection_init`. */
  viewer?: Viewer;
}

export type Yoga = YogaServerInstance<ServerContext, Context>;

export function createYogaApp(app: App): Yoga {
  const production = app.config.NODE_ENV === "production";
  return createYoga<ServerContext, Context>({
    schema,
    graphqlEndpoint: "/graphql",
    graphiql: !production,
    landingPage: false,
    logging: false,
    context: async ({ request, viewer }) => ({
      app,
      viewer:
        viewer ??
        (await app.auth.authenticate(request.headers.get("authorization"), request.headers.get(ACT_AS_HEADER))),
    }),
    maskedErrors: {
      maskError(error, message) {
        const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
        if (original instanceof GraphQLError && original.extensions?.code) return original;
        const errorId = newId("err");
        app.log.error({ errorId, err: original }, "unexpected error while serving a request");
        const masked = defaultMaskError(error, message, false);
        return new GraphQLError(masked.message, {
          nodes: masked instanceof GraphQLError ? masked.nodes : undefined,
          path: masked instanceof GraphQLError ? masked.path : undefined,
          extensions: { code: "INTERNAL_SERVER_ERROR", errorId },
        });
      },
    },
  });
}
