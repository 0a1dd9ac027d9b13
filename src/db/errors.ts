/**
 * Whether an error (pg's own, or Prisma's for a typed query or raw SQL) carries this PostgreSQL
 * SQLSTATE, e.g. 23505 unique_violation, 23503 foreign_key_violation.
 */
export function isPgError(error: unknown, sqlState: "23505" | "23503"): boolean {
  const e = error as {
    code?: string;
    meta?: { code?: string; driverAdapterError?: { cause?: { originalCode?: string } } };
  };
  const prismaCode = sqlState === "23505" ? "P2002" : "P2003";
  return (
    e?.code === sqlState || // pg itself
    e?.code === prismaCode ||
    e?.meta?.code === sqlState ||
    e?.meta?.driverAdapterError?.cause?.originalCode === sqlState
  );
}
