import { readFileSync } from "node:fs";
import path from "node:path";
import {
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  GraphQLEnumType,
  GraphQLInputObjectType,
  GraphQLObjectType,
  lexicographicSortSchema,
  printSchema,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputField,
  type GraphQLSchema,
  type IntrospectionQuery,
} from "graphql";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";

const SCHEMA_FILE = path.resolve(import.meta.dirname, "../../schema.graphql");

const EVENT_TYPES = [
  "agent_created", "agent_updated", "agent_deleted",
  "message_received", "conversation_updated", "conversation_closed",
  "user_signed_up", "user_logged_in", "user_logged_out",
  "rate_limit_exceeded", "server_error",
];

const print = (schema: GraphQLSchema) => printSchema(lexicographicSortSchema(schema));

/** `{ fieldName: "Type!" }` for an object or input type. */
function fieldsOf(schema: GraphQLSchema, typeName: string): Record<string, string> {
  const type = schema.getType(typeName);
  if (!(type instanceof GraphQLObjectType || type instanceof GraphQLInputObjectType)) {
    throw new Error(`${typeName} is not an object or input type`);
  }
  const fields = type.getFields() as Record<string, GraphQLField<unknown, unknown> | GraphQLInputField>;
  return Object.fromEntries(Object.values(fields).map((f) => [f.name, String(f.type)]));
}

/** `"(arg: Type, …): Result"` of a root field, arguments in declaration order. */
function signature(field: GraphQLField<unknown, unknown> | undefined): string | undefined {
  if (!field) return undefined;
  const args = field.args.map((a: GraphQLArgument) => `${a.name}: ${String(a.type)}`);
  return `(${args.join(", ")}): ${String(field.type)}`;
}

function argsOf(field: GraphQLField<unknown, unknown> | undefined): Record<string, string> {
  return Object.fromEntries((field?.args ?? []).map((a) => [a.name, String(a.type)]));
}

function enumValues(schema: GraphQLSchema, name: string): string[] {
  const type = schema.getType(name);
  if (!(type instanceof GraphQLEnumType)) throw new Error(`${name} is not an enum`);
  return type.getValues().map((v) => v.name);
}

describeEachMode("schema.graphql", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let served: GraphQLSchema;

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend);
    const result = await app.gql<IntrospectionQuery>(
      app.adminKey,
      getIntrospectionQuery({
        descriptions: true,
        specifiedByUrl: true,
        directiveIsRepeatable: true,
        schemaDescription: true,
        inputValueDeprecation: true,
      }),
    );
    if (!result.data) throw new Error(`introspection failed: ${JSON.stringify(result.errors)}`);
    served = buildClientSchema(result.data);
  });
  afterAll(async () => {
    await app?.stop();
    await backend?.dispose();
  });

  it("the committed schema.graphql is exactly the schema the server serves", () => {
    const committed = buildSchema(readFileSync(SCHEMA_FILE, "utf8"));
    expect(print(served)).toBe(print(committed));
  });

  it("schema.graphql is printed sorted, as the server's schema prints", () => {
    const text = readFileSync(SCHEMA_FILE, "utf8");
    expect(text.trimEnd()).toBe(print(served));
  });

  it("has the contract's enums with exactly their values", () => {
    expect([...enumValues(served, "EventType")].sort()).toEqual([...EVENT_TYPES].sort());
    expect([...enumValues(served, "WebhookStatus")].sort()).toEqual(["active", "disabled"]);
    expect([...enumValues(served, "DeliveryStatus")].sort()).toEqual(["failed", "pending", "succeeded"]);
  });

  it("has the contract's queries", () => {
    const query = served.getQueryType()!.getFields();
    expect(signature(query.viewer)).toBe("(): Account!");
    expect(signature(query.webhook)).toBe("(id: ID!): Webhook");
    expect(String(query.webhooks?.type)).toBe("WebhookConnection!");
    expect(argsOf(query.webhooks)).toMatchObject({ first: "Int", after: "String", status: "WebhookStatus" });
  });

  it("has the contract's mutations", () => {
    const mutation = served.getMutationType()!.getFields();
    expect(signature(mutation.createWebhook)).toBe("(input: CreateWebhookInput!): CreateWebhookPayload!");
    expect(signature(mutation.updateWebhook)).toBe("(id: ID!, input: UpdateWebhookInput!): Webhook!");
    expect(signature(mutation.deleteWebhook)).toBe("(id: ID!): DeleteWebhookPayload!");
    expect(signature(mutation.rotateWebhookSecret)).toBe("(id: ID!): RotateWebhookSecretPayload!");
    expect(signature(mutation.createAccount)).toBe("(name: String!): CreateAccountPayload!");
    expect(signature(mutation.createApiKey)).toBe("(accountId: ID, name: String): CreateApiKeyPayload!");
  });

  it("has the contract's object and input types", () => {
    expect(fieldsOf(served, "Account")).toMatchObject({ id: "ID!", name: "String!", createdAt: "DateTime!" });
    expect(fieldsOf(served, "Webhook")).toMatchObject({
      id: "ID!",
      url: "String!",
      events: "[EventType!]!",
      status: "WebhookStatus!",
      description: "String",
      disabledReason: "String",
      createdAt: "DateTime!",
      updatedAt: "DateTime!",
    });
    expect(fieldsOf(served, "CreateWebhookInput")).toMatchObject({
      url: "String!",
      events: "[EventType!]!",
      description: "String",
    });
    expect(fieldsOf(served, "UpdateWebhookInput")).toMatchObject({
      url: "String",
      events: "[EventType!]",
      description: "String",
      status: "WebhookStatus",
    });
    expect(fieldsOf(served, "CreateWebhookPayload")).toMatchObject({ webhook: "Webhook!", secret: "String!" });
    expect(fieldsOf(served, "RotateWebhookSecretPayload")).toMatchObject({ webhook: "Webhook!", secret: "String!" });
    expect(fieldsOf(served, "DeleteWebhookPayload")).toMatchObject({ id: "ID!" });
    expect(fieldsOf(served, "CreateAccountPayload")).toMatchObject({ account: "Account!", apiKey: "String!" });
    expect(fieldsOf(served, "CreateApiKeyPayload")).toMatchObject({ apiKey: "String!" });
  });

  it("webhooks are a Relay connection", () => {
    expect(fieldsOf(served, "WebhookConnection")).toMatchObject({ edges: expect.stringMatching(/^\[WebhookEdge!?\]!?$/), pageInfo: "PageInfo!" });
    expect(fieldsOf(served, "WebhookEdge")).toMatchObject({ cursor: "String!", node: expect.stringMatching(/^Webhook!?$/) });
    expect(fieldsOf(served, "PageInfo")).toMatchObject({ hasNextPage: "Boolean!", endCursor: "String" });
  });
});
