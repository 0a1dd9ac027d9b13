import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { describe, inject } from "vitest";

/** Where a test app keeps its data: embedded PGlite, or PostgreSQL (and Redis when it comes). */
export type Mode = "embedded" | "postgres";

export interface Backend {
  mode: Mode;
  /** DATABASE_URL for the app (unset for embedded). */
  databaseUrl?: string;
  /** DATA_DIR for the app (embedded). */
  dataDir: string;
  /** REDIS_URL and a private key prefix, for the service-backed mode. */
  redisUrl?: string;
  redisPrefix: string;
  /** Removes what the backend created. */
  dispose(): Promise<void>;
}

/** A fresh, private database for one test file: a temp PGlite dir, or a new PostgreSQL schema. */
export async function createBackend(mode: Mode): Promise<Backend> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "spawn-test-"));
  const redisPrefix = `test-${randomBytes(6).toString("hex")}`;
  if (mode === "embedded") {
    return { mode, dataDir, redisPrefix, dispose: () => rm(dataDir, { recursive: true, force: true }) };
  }
  const { postgres, redis } = inject("services");
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const url = new URL(postgres.url);
  url.searchParams.set("schema", schema);
  return {
    mode,
    dataDir,
    redisPrefix,
    databaseUrl: url.toString(),
    ...(redis.available ? { redisUrl: redis.url } : {}),
    async dispose() {
      const client = new pg.Client({ connectionString: postgres.url });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Why a mode cannot run here, or undefined when it can. */
export function unavailable(mode: Mode): string | undefined {
  if (mode === "embedded") return undefined;
  const { postgres } = inject("services");
  return postgres.available ? undefined : `PostgreSQL unavailable: ${postgres.reason}`;
}

/**
 * Runs the same suite once per mode: embedded (PGlite) and postgres (PostgreSQL). A mode whose
 * service is missing is skipped with the reason in its name (CI=true never gets here: the global
 * setup fails first).
 */
export function describeEachMode(name: string, suite: (mode: Mode) => void): void {
  for (const mode of ["embedded", "postgres"] as const) {
    const reason = unavailable(mode);
    if (reason) describe.skip(`${name} [${mode}] (skipped: ${reason})`, () => suite(mode));
    else describe(`${name} [${mode}]`, () => suite(mode));
  }
}
