import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../generated/prisma/client.ts";

export { PrismaClient };
export type Db = PrismaClient;

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

/** A Prisma driver adapter for a PostgreSQL URL, honouring `?schema=`. */
export function createAdapter(connectionString: string, options: { max: number }): PrismaPg {
  const parsed = parseDatabaseUrl(connectionString);
  return new PrismaPg(
    {
      connectionString: parsed.connectionString,
      max: options.max,
      ...(parsed.schema ? { options: `-c search_path="${parsed.schema}"` } : {}),
    },
    parsed.schema ? { schema: parsed.schema } : undefined,
  );
}

/** A Prisma client over `@prisma/adapter-pg`; the pool opens on first use. */
export function createPrismaClient(connectionString: string, options: { max: number }): PrismaClient {
  return new PrismaClient({ adapter: createAdapter(connectionString, options) });
}
