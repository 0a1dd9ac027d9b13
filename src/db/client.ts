import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { PrismaClient } from "../generated/prisma/client.ts";

export { PrismaClient };
export type Db = PrismaClient;
/** The pg pool under Prisma, for the few hot statements that skip Prisma's engine. */
export type Sql = pg.Pool;

/**
 * Splits a `postgresql://…?schema=name` URL into what `pg` understands and the schema name,
 * since `pg` ignores the `schema` parameter that Prisma URLs carry.
 */
export function parseDatabaseUrl(connectionString: string): { connectionString: string; schema: string | undefined } {
  const url = new URL(connectionString);
  const schema = url.searchParams.get("schema") ?? undefined;
  url.searchParams.delete("schema");
  return { connectionString: url.toString(), schema };
}

/**
 * One pg pool, shared by Prisma (through `@prisma/adapter-pg`) and the hot-path SQL. Sessions run
 * in UTC (Prisma's DateTime columns are timestamps without time zone, holding UTC) and, with
 * `?schema=`, in that schema. The pool opens on first use.
 */
export function createDatabase(connectionString: string, options: { max: number }): { prisma: PrismaClient; sql: Sql } {
  const parsed = parseDatabaseUrl(connectionString);
  const sql = new pg.Pool({
    connectionString: parsed.connectionString,
    max: options.max,
    options: `-c timezone=UTC${parsed.schema ? ` -c search_path="${parsed.schema}"` : ""}`,
  });
  sql.on("error", () => {}); // an idle client's connection dropped: the pool replaces it
  const prisma = new PrismaClient({ adapter: new PrismaPg(sql, parsed.schema ? { schema: parsed.schema } : undefined) });
  return { prisma, sql };
}
