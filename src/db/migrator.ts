import { readdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PrismaPg } from "@prisma/adapter-pg";
import {
  bindMigrationAwareSqlAdapterFactory,
  ColumnTypeEnum,
  mockMigrationAwareAdapterFactory,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
  type SqlQuery,
} from "@prisma/driver-adapter-utils";
import * as engineBindings from "@prisma/schema-engine-wasm/schema_engine_bg";
import type { MigrationDirectory, SchemaEngine, SchemaFilter } from "@prisma/schema-engine-wasm/schema_engine_bg";
import pg from "pg";
import { isPgError } from "./errors.ts";

// Node has WebAssembly, but @types/node does not declare it without the DOM lib.
declare const WebAssembly: {
  compile(bytes: Uint8Array): Promise<object>;
  instantiate(module: object, imports: Record<string, object>): Promise<{ exports: Record<string, unknown> }>;
};

const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** Where `prisma/migrations` lives, independent of the working directory. */
export const defaultMigrationsDir = path.join(repoRoot, "prisma", "migrations");

const lockfileName = "migration_lock.toml";
const migrationFileName = "migration.sql";
const noFilters: SchemaFilter = { externalTables: [], externalEnums: [] };

type Bindings = typeof engineBindings;
let bindingsReady: Promise<Bindings> | undefined;

function loadEngine(): Promise<Bindings> {
  bindingsReady ??= (async () => {
    const require = createRequire(import.meta.url);
    const jsPath = require.resolve("@prisma/schema-engine-wasm/schema_engine_bg");
    const bytes = await readFile(path.join(path.dirname(jsPath), "schema_engine_bg.wasm"));
    const module = await WebAssembly.compile(bytes);
    const instance = await WebAssembly.instantiate(module, {
      "./schema_engine_bg.js": withUnrefTimers(engineBindings),
    });
    installPanicRegistry();
    engineBindings.__wbg_set_wasm(instance.exports);
    (instance.exports.__wbindgen_start as () => void)();
    return engineBindings;
  })();
  bindingsReady.catch(() => {
    bindingsReady = undefined;
  });
  return bindingsReady;
}

/**
 * The engine races each advisory-lock wait against a 10 s timer that it never clears, which kept
 * the process alive for 10 s after every migration run. Its timers are unref'd; the database
 * connection it is waiting on keeps the process alive while that matters.
 */
function withUnrefTimers(bindings: Bindings): Record<string, unknown> {
  const imports: Record<string, unknown> = { ...bindings };
  for (const name of Object.keys(imports).filter((key) => key.startsWith("__wbg_setTimeout_"))) {
    imports[name] = (callback: () => void, ms: number) => setTimeout(callback, ms >>> 0).unref();
  }
  return imports;
}

/** Rust panics reach JS through this global (the one Prisma's CLI installs); the last message is kept. */
const panics = { last: undefined as string | undefined };
function installPanicRegistry(): void {
  const g = globalThis as { PRISMA_WASM_PANIC_REGISTRY?: { set_message(message: string): void } };
  g.PRISMA_WASM_PANIC_REGISTRY ??= {
    set_message(message: string) {
      panics.last = message;
    },
  };
}

/** The engine logs JSON tracing events; callers get their `message`. */
function engineLogger(log: ((msg: string) => void) | undefined): (line: string) => void {
  return (line) => {
    if (!log) return;
    try {
      const event = JSON.parse(line) as { fields?: { message?: unknown } };
      log(typeof event.fields?.message === "string" ? event.fields.message : line);
    } catch {
      log(line);
    }
  };
}

async function withEngine<T>(
  adapterFactory: SqlMigrationAwareDriverAdapterFactory,
  log: ((msg: string) => void) | undefined,
  run: (engine: SchemaEngine) => Promise<T>,
): Promise<T> {
  const { SchemaEngine } = await loadEngine();
  let engine: SchemaEngine;
  try {
    engine = await SchemaEngine.new(
      { datamodels: undefined },
      engineLogger(log),
      bindMigrationAwareSqlAdapterFactory(adapterFactory),
    );
  } catch (error) {
    throw engineError(error);
  }
  try {
    return await run(engine);
  } catch (error) {
    throw engineError(error);
  } finally {
    try {
      engine.free();
    } catch {
      // After a panic the engine is still marked as borrowed and cannot be freed.
    }
  }
}

function engineError(error: unknown): Error {
  if (error instanceof Error) {
    if (error.name === "RuntimeError" && panics.last) error.message = `schema engine panicked: ${panics.last}`;
    return error;
  }
  const message =
    typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error);
  return new Error(`schema engine: ${message}`, { cause: error });
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * PrismaPg's `executeScript` splits a script on every `;` and runs the pieces one by one. Migration
 * scripts are sent whole instead, in one simple-protocol query, as Prisma's native engine does: a `;`
 * inside a literal or a function body survives, and PostgreSQL runs the script in one implicit
 * transaction, so a failing migration leaves nothing half-applied.
 */
function wholeScripts(factory: PrismaPg): SqlMigrationAwareDriverAdapterFactory {
  const patch = <T extends SqlDriverAdapter>(adapter: T): T =>
    Object.assign(adapter, {
      async executeScript(script: string) {
        await adapter.executeRaw({ sql: script, args: [], argTypes: [] });
      },
    });
  return {
    provider: factory.provider,
    adapterName: factory.adapterName,
    connect: async () => patch(await factory.connect()),
    connectToShadowDb: async () => patch(await factory.connectToShadowDb()),
  };
}

async function readMigrations(baseDir: string): Promise<MigrationDirectory[]> {
  const entries = await readdir(baseDir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [];
    throw error;
  });
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  return Promise.all(
    names.map(async (name): Promise<MigrationDirectory> => {
      const file = path.join(baseDir, name, migrationFileName);
      const content = await readFile(file, "utf8").then(
        (value) => ({ tag: "ok" as const, value }),
        (error: Error) => ({ tag: "error" as const, value: error.message }),
      );
      return { path: name, migrationFile: { path: migrationFileName, content } };
    }),
  );
}

/**
 * Applies the pending migrations of `migrationsDir` (default `prisma/migrations`) and records them in
 * `_prisma_migrations`, as `prisma migrate deploy` does.
 *
 * A `?schema=` parameter in the URL selects (and creates if missing) the PostgreSQL schema. The
 * engine talks through a single connection, which is closed before this returns, so it also works
 * against PGlite behind `pglite-socket`.
 *
 * @returns the names of the migrations applied, in order; empty when none was pending
 */
/**
 * `CREATE SCHEMA IF NOT EXISTS` is not safe against itself: two processes starting together on a
 * new schema (before the engine's advisory lock) can both pass the check, and the second fails on
 * the catalog's unique index. Losing that race means the schema exists, which is all we want.
 */
async function createSchema(client: pg.ClientBase, schema: string): Promise<void> {
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  } catch (error) {
    if (isPgError(error, "23505")) return;
    throw error;
  }
}

export async function applyMigrations(opts: {
  connectionString: string;
  migrationsDir?: string;
  log?: (msg: string) => void;
}): Promise<string[]> {
  const baseDir = path.resolve(opts.migrationsDir ?? defaultMigrationsDir);
  const [migrationDirectories, lockfile] = await Promise.all([
    readMigrations(baseDir),
    readFile(path.join(baseDir, lockfileName), "utf8").catch(() => null),
  ]);
  const url = new URL(opts.connectionString);
  const schema = url.searchParams.get("schema") || undefined;
  url.searchParams.delete("schema");
  const pool = new pg.Pool({
    connectionString: url.toString(),
    max: 1,
    // PGlite ignores the `options` startup parameter, so `search_path` is set with SQL instead.
    onConnect: schema
      ? async (client) => {
          await createSchema(client, schema);
          await client.query(`SET search_path TO ${quoteIdent(schema)}`);
        }
      : undefined,
  });
  pool.on("error", (error) => opts.log?.(`migration connection error: ${error.message}`));
  const closed: Promise<void>[] = [];
  pool.on("connect", (client) => closed.push(new Promise((resolve) => client.once("end", () => resolve()))));
  try {
    const factory = wholeScripts(new PrismaPg(pool, schema ? { schema } : undefined));
    const { appliedMigrationNames } = await withEngine(factory, opts.log, (engine) =>
      engine.applyMigrations({
        migrationsList: {
          baseDir,
          lockfile: { path: lockfileName, content: lockfile },
          shadowDbInitScript: "",
          migrationDirectories,
        },
        filters: noFilters,
      }),
    );
    return appliedMigrationNames;
  } finally {
    // PGlite has one session for all its connections: do not leave our search_path to the next one.
    if (schema) await pool.query("RESET search_path").catch(() => undefined);
    // pool.end() resolves before the socket is closed; PGlite would refuse the next connection.
    await pool.end();
    await Promise.all(closed);
  }
}

/**
 * An adapter that never reaches a database. The engine probes the server once when it starts
 * (`SELECT EXISTS(... pg_namespace ...), version(), ...`); that probe gets a canned answer and
 * every other call fails.
 */
function offlineAdapterFactory(): SqlMigrationAwareDriverAdapterFactory {
  const mock = mockMigrationAwareAdapterFactory("postgres");
  const probe = {
    columnNames: ["exists", "version", "numeric_version"],
    columnTypes: [ColumnTypeEnum.Boolean, ColumnTypeEnum.Text, ColumnTypeEnum.Int32],
    rows: [[true, "PostgreSQL 15.0 (offline diff)", 150000]],
  };
  const offline = async () => {
    const adapter = await mock.connect();
    const queryRaw = (query: SqlQuery) =>
      query.sql.includes("pg_namespace") && query.sql.includes("version()")
        ? Promise.resolve(probe)
        : adapter.queryRaw(query);
    return { ...adapter, queryRaw };
  };
  return { ...mock, connect: offline, connectToShadowDb: offline };
}

/**
 * The SQL of a migration from the Prisma schema text `from` (`null`: an empty database) to `to`.
 * No database is involved (see {@link offlineAdapterFactory}). Returns `""` when the two schemas
 * describe the same database (the engine itself then answers with a lone SQL comment).
 */
export async function diffSchemas(from: string | null, to: string): Promise<string> {
  const { stdout } = await withEngine(offlineAdapterFactory(), undefined, (engine) =>
    engine.diff({
      from:
        from === null ? { tag: "empty" } : { tag: "schemaDatamodel", files: [{ path: "from.prisma", content: from }] },
      to: { tag: "schemaDatamodel", files: [{ path: "schema.prisma", content: to }] },
      script: true,
      exitCode: null,
      filters: noFilters,
    }),
  );
  const sql = stdout ?? "";
  return hasStatements(sql) ? sql : "";
}

function hasStatements(sql: string): boolean {
  return sql.split("\n").some((line) => line.trim() !== "" && !line.trim().startsWith("--"));
}
