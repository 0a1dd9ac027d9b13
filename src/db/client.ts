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

function sessionOptions(schema: string | undefined, extra = ""): string {
  return `-c timezone=UTC${extra}${schema ? ` -c search_path="${schema}"` : ""}`;
}

/**
 * A small pool for the statements whose commit need not wait for the disk: a worker's lease.
 * Its sessions run with `synchronous_commit = off`, so a claim commits without waiting for the
 * WAL flush (other sessions see the lease at once; only a crash of PostgreSQL itself can lose a
 * lease, and then the delivery is simply attempted again). Events and attempts are never written
 * through it.
 */
export function createLeasePool(connectionString: string, options: { max: number }): Sql {
  const parsed = parseDatabaseUrl(connectionString);
  const pool = new pg.Pool({
    connectionString: parsed.connectionString,
    max: options.max,
    options: sessionOptions(parsed.schema, " -c synchronous_commit=off"),
  });
  pool.on("error", () => {});
  return pool;
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
    options: sessionOptions(parsed.schema),
  });
  sql.on("error", () => {}); // an idle client's connection dropped: the pool replaces it
  const prisma = new PrismaClient({ adapter: new PrismaPg(sql, parsed.schema ? { schema: parsed.schema } : undefined) });
  return { prisma, sql };
}
