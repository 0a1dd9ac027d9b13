import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import { GraphQLError } from "graphql";
import { createYoga, useErrorHandler, type YogaServerInstance } from "graphql-yoga";
import { ACT_AS_HEADER, type Viewer } from "../auth/viewer.ts";
import type { App, Context } from "../context.ts";
import { newId } from "../lib/ids.ts";
import { schema } from "../schema/index.ts";
import { INTERNAL_ERROR_MESSAGE, reportUnexpectedError } from "./report.ts";

/** What an HTTP request or a WebSocket operation brings to the GraphQL context. */
export interface ServerContext {
  /** Set by the WebSocket layer, which authenticated the connection in `connection_init`. */
  viewer?: Viewer;
  /** The JSON body of a POST, already read (and size-checked) by the HTTP server. */
  body?: Buffer;
}

const badRequest = (message: string) =>
  new GraphQLError(message, { extensions: { http: { status: 400 }, code: "BAD_REQUEST" } });

/**
 * Parses a POST body the server already read, as yoga's own JSON parser would (same errors), so
 * the request does not go through a second body stream and yoga's size-limiting stream copy;
 * about a tenth of the CPU of a small mutation.
 */
function parseJsonBody(body: Buffer): Record<string, unknown> | unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw badRequest("POST body sent invalid JSON.");
  }
  if (parsed === null || typeof parsed !== "object") {
    throw badRequest(`POST body is expected to be object but received ${parsed === null ? "null" : typeof parsed}`);
  }
  return parsed as Record<string, unknown> | unknown[];
}

export type Yoga = YogaServerInstance<ServerContext, Context>;

/** GraphQL document limits (GraphQL Armor), applied over HTTP and WebSocket alike. */
export const DOCUMENT_LIMITS = {
  maxDepth: 12,
  maxAliases: 20,
  maxTokens: 2_000,
  maxDirectives: 20,
  maxCost: 20_000,
  maxBatch: 10,
};

type ErrorKind = "expected" | "input" | "unexpected";

const isGraphqlError = (error: unknown): error is GraphQLError =>
  error instanceof GraphQLError || (error as Error | undefined)?.name === "GraphQLError";

/**
 * - expected: one of our errors, with a contract code;
 * - input: the request itself is wrong (a variable of the wrong type, a cursor we never gave, a
 *   negative page size): graphql-js and Pothos raise these as GraphQLErrors without a code;
 * - unexpected: anything else (a bug, the database): masked, logged, reported to the account.
 */
function classify(error: unknown): ErrorKind {
  const original = isGraphqlError(error) ? (error.originalError ?? error) : error;
  if (typeof (original as GraphQLError | undefined)?.extensions?.code === "string") return "expected";
  if (original instanceof Error && original.name === "PothosValidationError") return "input";
  if (isGraphqlError(original)) return "input";
  if (isGraphqlError(error) && !error.path) return "input"; // coercing variables, before any resolver
  return "unexpected";
}

export function createYogaApp(app: App): Yoga {
  const production = app.config.NODE_ENV === "production";
  return createYoga<ServerContext, Context>({
    schema,
    graphqlEndpoint: "/graphql",
    graphiql: !production,
    landingPage: false,
    logging: false,
    batching: { limit: DOCUMENT_LIMITS.maxBatch },
    context: async ({ request, viewer }) => {
      const resolved =
        viewer ??
        (await app.auth.authenticate(request.headers.get("authorization"), request.headers.get(ACT_AS_HEADER)));
      await app.limiter.consume(resolved);
      return { app, viewer: resolved };
    },
    plugins: [
      {
        onRequestParse({ serverContext, setRequestParser }) {
          const server = serverContext as ServerContext | undefined;
          const body = server?.body;
          if (!body) return;
          // parsed once, then dropped: yoga copies the server context into every operation's context
          delete server.body;
          setRequestParser(() => parseJsonBody(body) as never);
        },
      },
      EnvelopArmorPlugin({
        maxDepth: { n: DOCUMENT_LIMITS.maxDepth, ignoreIntrospection: true },
        maxAliases: { n: DOCUMENT_LIMITS.maxAliases },
        maxTokens: { n: DOCUMENT_LIMITS.maxTokens },
        maxDirectives: { n: DOCUMENT_LIMITS.maxDirectives },
        costLimit: { maxCost: DOCUMENT_LIMITS.maxCost, ignoreIntrospection: true },
        blockFieldSuggestion: { enabled: production },
      }),
      useErrorHandler(({ errors, context, phase }) => {
        if (phase !== "execution") return;
        // in the execution phase envelop hands over the execution args, whose contextValue is ours
        const ours = (context as { contextValue?: Partial<Context> }).contextValue ?? (context as Partial<Context>);
        const viewer = ours.viewer;
        for (const error of errors) {
          if (classify(error) !== "unexpected") continue;
          const original = isGraphqlError(error) ? (error.originalError ?? error) : error;
          const errorId = newId("err");
          (original as { errorId?: string }).errorId = errorId;
          reportUnexpectedError(app, viewer, original, errorId);
        }
      }),
    ],
    maskedErrors: {
      maskError(error) {
        const kind = classify(error);
        const original = isGraphqlError(error) ? (error.originalError ?? error) : error;
        if (kind === "expected") return original as GraphQLError;
        if (kind === "input") {
          const source = error as GraphQLError;
          if (!isGraphqlError(source)) return new GraphQLError(String((original as Error).message));
          return new GraphQLError(source.message, {
            nodes: source.nodes,
            path: source.path,
            extensions: { ...source.extensions, code: "BAD_USER_INPUT" },
          });
        }
        const errorId = (original as { errorId?: string }).errorId ?? reportUnexpectedError(app, undefined, original);
        return new GraphQLError(INTERNAL_ERROR_MESSAGE, {
          nodes: error instanceof GraphQLError ? error.nodes : undefined,
          path: error instanceof GraphQLError ? error.path : undefined,
          extensions: { code: "INTERNAL_SERVER_ERROR", errorId },
        });
      },
    },
  });
}
