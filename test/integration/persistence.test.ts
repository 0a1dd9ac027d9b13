import { randomBytes } from "node:crypto";
import { cp, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it, type ExpectStatic } from "vitest";
import { parseDatabaseUrl } from "../../src/db/client.ts";
import { startEmbeddedPostgres } from "../../src/db/embedded.ts";
import { applyMigrations, defaultMigrationsDir } from "../../src/db/migrator.ts";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend, type Mode } from "../helpers/backends.ts";
import { freePort, runServiceToExit, startServiceProcess, type ServiceProcess } from "../helpers/process.ts";

const ADMIN_KEY = /sk_admin_[A-Za-z0-9_-]+/g;
const CREATE_ACCOUNT = `mutation ($name: String!) { createAccount(name: $name) { account { id name } apiKey } }`;
const CREATE_WEBHOOK = `mutation ($input: CreateWebhookInput!) {
  createWebhook(input: $input) { webhook { id url events status description createdAt updatedAt } }
}`;
const GET_WEBHOOK = `query ($id: ID!) { webhook(id: $id) { id url events status description createdAt updatedAt } }`;

async function post(url: string, key: string, query: string, variables?: Record<string, unknown>, headers = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}`, ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, ...((await response.json()) as { data?: any; errors?: any[] }) };
}

/** The migrations the repository ships, in order. */
async function shippedMigrations(): Promise<string[]> {
  const entries = await readdir(defaultMigrationsDir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

/** A database nobody has migrated yet, of the given mode; `drop` removes it. */
async function freshDatabase(mode: Mode): Promise<{ connectionString: string; drop(): Promise<void> }> {
  if (mode === "embedded") {
    const dir = await mkdtemp(path.join(tmpdir(), "spawn-migrate-"));
    const embedded = await startEmbeddedPostgres(dir);
    return {
      connectionString: embedded.connectionString,
      async drop() {
        await embedded.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  const { postgres } = inject("services");
  const schema = `t_mig_${randomBytes(5).toString("hex")}`;
  const url = new URL(postgres.url);
  url.searchParams.set("schema", schema);
  return {
    connectionString: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: postgres.url });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await client.end();
    },
  };
}

describeEachMode("persistence", (mode) => {
  let backend: Backend;
  let app: TestApp | undefined;
  let account: { accountId: string; apiKey: string };
  let webhook: Record<string, unknown> & { id: string };

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend);
    account = await app.createAccount("Persistent");
    const created = await app.gql(account.apiKey, CREATE_WEBHOOK, {
      input: { url: "https://example.com/kept", events: ["agent_created", "user_signed_up"], description: "kept" },
    });
    webhook = created.data.createWebhook.webhook;
  });
  afterAll(async () => {
    await app?.stop();
    await backend?.dispose();
  });

  async function expectWebhookKept(current: TestApp) {
    const read = await current.gql(account.apiKey, GET_WEBHOOK, { id: webhook.id });
    expect(read.status).toBe(200);
    expect(read.data.webhook).toEqual(webhook);
    const list = await current.gql(account.apiKey, `{ webhooks { edges { node { id } } } }`);
    expect(list.data.webhooks.edges).toEqual([{ node: { id: webhook.id } }]);
  }

  it("keeps accounts, API keys and webhooks across a restart", async () => {
    await app!.stop();
    app = undefined;
    app = await startTestApp(backend);
    const viewer = await app.gql(account.apiKey, `{ viewer { id name } }`);
    expect(viewer.data.viewer).toEqual({ id: account.accountId, name: "Persistent" });
    await expectWebhookKept(app);
  });

  it("applying the migrations again to the app's database applies nothing and keeps the data", async () => {
    if (mode === "embedded") {
      // PGlite takes one client at a time: migrate with the app stopped, through our own server.
      await app!.stop();
      app = undefined;
      const embedded = await startEmbeddedPostgres(backend.dataDir);
      try {
        expect(await applyMigrations({ connectionString: embedded.connectionString })).toEqual([]);
      } finally {
        await embedded.stop();
      }
      app = await startTestApp(backend);
    } else {
      expect(await applyMigrations({ connectionString: backend.databaseUrl! })).toEqual([]);
    }
    await expectWebhookKept(app!);
  });

  // What follows does not use the app above and runs side by side: starting databases and
  // processes is what takes time here.
  describe.concurrent("on databases of their own", () => {
    it("a fresh database gets every shipped migration once, then none", async ({ expect }) => {
      const shipped = await shippedMigrations();
      expect(shipped.length).toBeGreaterThan(0);
      const db = await freshDatabase(mode);
      try {
        expect(await applyMigrations({ connectionString: db.connectionString })).toEqual(shipped);
        expect(await applyMigrations({ connectionString: db.connectionString })).toEqual([]);
        // the hand-written storage setting of 0002 (HOT claims) is in place
        const { connectionString, schema } = parseDatabaseUrl(db.connectionString);
        const client = new pg.Client({ connectionString });
        await client.connect();
        try {
          const { rows } = await client.query(
            `SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relname = 'Delivery' AND n.nspname = $1`,
            [schema ?? "public"],
          );
          expect(rows).toEqual([{ reloptions: ["fillfactor=50"] }]);
        } finally {
          await client.end();
        }
      } finally {
        await db.drop();
      }
    });

    it("a database migrated by an earlier release gets only the newer migrations", async ({ expect }) => {
      const shipped = await shippedMigrations();
      expect(shipped.length).toBeGreaterThan(1);
      // the first release's migrations directory: its first migration and the lock file
      const earlier = await mkdtemp(path.join(tmpdir(), "spawn-migrations-"));
      await cp(path.join(defaultMigrationsDir, shipped[0]!), path.join(earlier, shipped[0]!), { recursive: true });
      await cp(path.join(defaultMigrationsDir, "migration_lock.toml"), path.join(earlier, "migration_lock.toml"));
      const db = await freshDatabase(mode);
      try {
        expect(await applyMigrations({ connectionString: db.connectionString, migrationsDir: earlier })).toEqual([shipped[0]]);
        expect(await applyMigrations({ connectionString: db.connectionString })).toEqual(shipped.slice(1));
        expect(await applyMigrations({ connectionString: db.connectionString })).toEqual([]);
      } finally {
        await db.drop();
        await rm(earlier, { recursive: true, force: true });
      }
    });

    // Processes of a deployment start together and race to migrate a new schema (PostgreSQL only:
    // PGlite takes one client at a time).
    it.skipIf(mode !== "postgres")("several processes migrating one new schema at once all succeed, and it is migrated once", async ({ expect }) => {
      const shipped = await shippedMigrations();
      const db = await freshDatabase(mode);
      try {
        const results = await Promise.allSettled(
          Array.from({ length: 10 }, () => applyMigrations({ connectionString: db.connectionString })),
        );
        expect(results.filter((r) => r.status === "rejected")).toEqual([]);
        const applied = results.flatMap((r) => (r.status === "fulfilled" ? r.value : []));
        expect(applied.sort()).toEqual([...shipped].sort());
      } finally {
        await db.drop();
      }
    });

    // The default set-up a user starts with (embedded PGlite in DATA_DIR). Starting real processes
    // is slow, so this runs in the embedded mode only.
    describe.skipIf(mode !== "embedded")("the service process (tsx src/main.ts, as npm start)", () => {
      let processBackend: Backend;
      const running: ServiceProcess[] = [];
      /** The process gets its own DATA_DIR: PGlite lets one process at a time open a database. */
      let databaseEnv: Record<string, string>;

      beforeAll(async () => {
        processBackend = await createBackend("embedded");
        databaseEnv = { DATA_DIR: processBackend.dataDir };
      });
      afterAll(async () => {
        for (const proc of running) await proc.stop("SIGKILL");
        await processBackend?.dispose();
      });

      async function start(expect: ExpectStatic): Promise<ServiceProcess> {
        const port = await freePort();
        const proc = await startServiceProcess({ ...databaseEnv, PORT: String(port), HOST: "127.0.0.1", LOG_LEVEL: "info" });
        running.push(proc);
        expect(proc.url).toBe(`http://127.0.0.1:${port}/graphql`);
        return proc;
      }

      it("prints a generated admin key once, keeps only its hash, and it works after a restart", async ({ expect }) => {
        const first = await start(expect);
        const printed = first.stdout().match(ADMIN_KEY) ?? [];
        expect(printed).toHaveLength(1);
        const adminKey = printed[0]!;
        const base = new URL(first.url).origin;

        expect((await fetch(`${base}/healthz`)).status).toBe(200);
        expect((await fetch(`${base}/readyz`)).status).toBe(200);

        const created = await post(first.url, adminKey, CREATE_ACCOUNT, { name: "From the process" });
        expect(created.errors).toBeUndefined();
        const { account: made, apiKey } = created.data.createAccount;
        expect(made.name).toBe("From the process");

        expect(await first.stop("SIGTERM")).toEqual({ code: 0, signal: null });
        expect(first.stdout().match(ADMIN_KEY)).toHaveLength(1);
        expect(first.stderr()).not.toContain(adminKey);

        const second = await start(expect);
        try {
          expect(second.stdout()).not.toMatch(ADMIN_KEY);
          const again = await post(second.url, adminKey, CREATE_ACCOUNT, { name: "Second run" });
          expect(again.errors).toBeUndefined();
          expect(again.data.createAccount.account.id).not.toBe(made.id);
          const viewer = await post(second.url, apiKey, `{ viewer { id name } }`);
          expect(viewer.data.viewer).toEqual({ id: made.id, name: "From the process" });
          const acting = await post(second.url, adminKey, `{ viewer { id } }`, undefined, { "x-account-id": made.id });
          expect(acting.data.viewer.id).toBe(made.id);
          const base2 = new URL(second.url).origin;
          expect((await fetch(`${base2}/healthz`)).status).toBe(200);
          expect((await fetch(`${base2}/readyz`)).status).toBe(200);
        } finally {
          expect(await second.stop("SIGTERM")).toEqual({ code: 0, signal: null });
        }
        expect(second.stdout()).not.toMatch(ADMIN_KEY);
        expect(second.stderr()).not.toMatch(ADMIN_KEY);
      });

      it("a bad WEBHOOK_TIMEOUT stops the process with one line naming the variable", async ({ expect }) => {
        const result = await runServiceToExit({
          ...databaseEnv,
          PORT: String(await freePort()),
          HOST: "127.0.0.1",
          WEBHOOK_TIMEOUT: "banana",
        });
        expect(result.signal).toBeNull();
        expect(result.code).not.toBe(0);
        expect(result.code).not.toBeNull();
        const lines = result.stderr.trim().split("\n");
        expect(lines, result.stderr).toHaveLength(1);
        expect(lines[0]).toContain("WEBHOOK_TIMEOUT");
        expect(result.stdout).not.toContain("listening on");
      });
    });
  });
});
