/**
 * The API ceiling: graphql-yoga alone, answering `{ __typename }` for a bearer token checked
 * against a constant, on node:http in its own process. Prints "listening on <url>".
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { GraphQLError } from "graphql";
import { createSchema, createYoga } from "graphql-yoga";

const TOKEN = process.env.BENCH_API_TOKEN ?? "sk_bench_api_ceiling";

const yoga = createYoga({
  schema: createSchema({ typeDefs: "type Query { hello: String }", resolvers: { Query: { hello: () => "world" } } }),
  graphqlEndpoint: "/graphql",
  graphiql: false,
  landingPage: false,
  logging: false,
  context: ({ request }) => {
    if (request.headers.get("authorization") !== `Bearer ${TOKEN}`) {
      throw new GraphQLError("invalid API key", { extensions: { code: "UNAUTHENTICATED", http: { status: 401 } } });
    }
    return {};
  },
});

const server = createServer(yoga);
server.keepAliveTimeout = 30_000;
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`api ceiling listening on http://127.0.0.1:${port}/graphql\n`);
});
process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
