import { lexicographicSortSchema, printSchema, type GraphQLSchema } from "graphql";
import { builder } from "./builder.ts";
import "./enums.ts";
import "./account.ts";
import "./webhook.ts";
import "./event.ts";
import "./delivery.ts";

/** The served schema. Building it opens nothing: codegen imports this module. */
export const schema: GraphQLSchema = builder.toSchema();

/** The schema as committed in schema.graphql. */
export function printedSchema(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
