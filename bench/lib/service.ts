import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import type { Pool } from "undici";
import { onCleanup } from "./cleanup.ts";
import { gqlOk, pool } from "./http.ts";
import { startChild, type Child } from "./procs.ts";
import { nowMs } from "./stats.ts";

export const POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? "redis://127.0.0.1:6379";
export const RUN_ID = randomBytes(4).toString("hex");

export type BackendKind = "embedded" | "redis-postgres" | "postgres";

export interface Backend {
  kind: BackendKind;
  /** The variables that select it: DATA_DIR, or DATABASE_URL (+ REDIS_URL, REDIS_PREFIX). */
  env: Record<string, string>;
  /** PostgreSQL schema (postgres kinds). */
  schema?: string;
  redisPrefix?: string;
  dataDir?: string;
}

let backendCount = 0;

/** Every variable the service reads: none is inherited from the harness's environment. */
const SERVICE_VARIABLES = [
  "PORT", "HOST", "DATABASE_URL", "DATA_DIR", "REDIS_URL", "REDIS_PREFIX", "ROLE", "ADMIN_API_KEY",
  "WEBHOOK_RETRY_SCHEDULE", "WEBHOOK_TIMEOUT", "WEBHOOK_ALLOW_PRIVATE_NETWORKS", "WEBHOOK_SWEEP_INTERVAL",
  "API_KEY_RECHECK_INTERVAL", "WEBHOOK_MAX_IN_FLIGHT", "WORKER_CONCURRENCY", "API_RATE_LIMIT", "LOG_LEVEL", "NODE_ENV", "NODE_OPTIONS",
];

/** A fresh database (temp PGlite dir, or a new PostgreSQL schema) and Redis prefix, removed at cleanup. */
export async function createBackend(kind: BackendKind): Promise<Backend> {
  const n = ++backendCount;
  if (kind === "embedded") {
    const dataDir = await mkdtemp(path.join(tmpdir(), `spawn-bench-${RUN_ID}-`));
    onCleanup(`PGlite dir ${dataDir}`, () => rm(dataDir, { recursive: true, force: true }));
    return { kind, dataDir, env: { DATA_DIR: dataDir } };
  }
  const schema = `bench_${RUN_ID}_${n}`;
  const url = new URL(POSTGRES_URL);
  url.searchParams.set("schema", schema);
  onCleanup(`PostgreSQL schema ${schema}`, () => dropSchema(schema));
  const env: Record<string, string> = { DATABASE_URL: url.toString() };
  let redisPrefix: string | undefined;
  if (kind === "redis-postgres") {
    redisPrefix = `bench-${RUN_ID}-${n}`;
    onCleanup(`Redis keys ${redisPrefix}*`, async () => void (await deleteRedisKeys(redisPrefix!)));
    Object.assign(env, { REDIS_URL: REDIS_URL, REDIS_PREFIX: redisPrefix });
  }
  return { kind, schema, env, ...(redisPrefix ? { redisPrefix } : {}) };
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** Deletes every key that starts with `prefix` (SCAN, never KEYS). */
export async function deleteRedisKeys(prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2, lazyConnect: true });
  await redis.connect();
  let deleted = 0;
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
  return deleted;
}

export interface Service {
  name: string;
  role: string;
  child: Child;
  url: string;
  origin: string;
  wsUrl: string;
  adminKey: string;
  backend: Backend;
  /** ms from spawn to "listening on". */
  startupMs: number;
  /** A keep-alive pool to the service for setup calls. */
  setup: Pool;
  stop(): Promise<void>;
}

export interface ServiceOptions {
  name: string;
  backend: Backend;
  role?: "all" | "api" | "worker";
  env?: Record<string, string>;
  /** node flags for the service process (e.g. --cpu-prof). */
  nodeFlags?: string[];
  adminKey?: string;
}

/**
 * An api process and a worker process (ROLE=api, ROLE=worker) on one backend, sharing the admin
 * key: `<name>-api` and `<name>-worker`. If the worker does not start, the api is stopped.
 */
export async function startSplitServices(options: Omit<ServiceOptions, "role" | "adminKey">): Promise<[Service, Service]> {
  const api = await startService({ ...options, name: `${options.name}-api`, role: "api" });
  try {
    return [api, await startService({ ...options, name: `${options.name}-worker`, role: "worker", adminKey: api.adminKey })];
  } catch (error) {
    await api.stop();
    throw error;
  }
}

/** Starts `src/main.ts` (what `npm start` runs) and waits for "listening on <url>". */
export async function startService(options: ServiceOptions): Promise<Service> {
  const adminKey = options.adminKey ?? `sk_admin_bench_${randomBytes(12).toString("hex")}`;
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of SERVICE_VARIABLES) delete env[name];
  Object.assign(env, {
    DOTENV_PATH: path.join(tmpdir(), `spawn-bench-no-such-${RUN_ID}.env`),
    ROLE: options.role ?? "all",
    HOST: "127.0.0.1",
    PORT: "0",
    ADMIN_API_KEY: adminKey,
    LOG_LEVEL: "warn",
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true",
    API_RATE_LIMIT: "1000000/s",
    NODE_ENV: "production",
    // a probe to load into the service (e.g. --require ./counter.cjs) without loading it into the harness
    ...(process.env.BENCH_SERVICE_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_SERVICE_NODE_OPTIONS } : {}),
    ...options.backend.env,
    ...options.env,
  });
  const t0 = nowMs();
  const child = await startChild({
    name: options.name,
    script: "src/main.ts",
    env,
    ready: /listening on (\S+)/,
    timeoutMs: 120_000,
    ...(options.nodeFlags ? { nodeFlags: options.nodeFlags } : {}),
  });
  const startupMs = nowMs() - t0;
  const url = child.ready[1]!;
  const parsed = new URL(url);
  const origin = `${parsed.protocol}//${parsed.host}`;
  const setup = pool(origin, 16);
  return {
    name: options.name,
    role: options.role ?? "all",
    child,
    url,
    origin,
    wsUrl: url.replace(/^http/, "ws"),
    adminKey,
    backend: options.backend,
    startupMs,
    setup,
    async stop() {
      await setup.close().catch(() => {});
      await child.stop(15_000);
    },
  };
}

export interface Account {
  id: string;
  apiKey: string;
}

export async function createAccount(service: Service, name: string): Promise<Account> {
  const data = await gqlOk<{ createAccount: { account: { id: string }; apiKey: string } }>(
    service.setup,
    service.adminKey,
    `mutation($name: String!) { createAccount(name: $name) { account { id } apiKey } }`,
    { name },
  );
  return { id: data.createAccount.account.id, apiKey: data.createAccount.apiKey };
}

/** Creates one webhook per URL (`concurrency` at a time); returns their ids in URL order. */
export async function createWebhooks(
  service: Service,
  account: Account,
  urls: string[],
  events: string[] = ["agent_created"],
  concurrency = 16,
): Promise<string[]> {
  const ids: string[] = new Array(urls.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, urls.length) }, async () => {
      while (next < urls.length) {
        const i = next++;
        const data = await gqlOk<{ createWebhook: { webhook: { id: string } } }>(
          service.setup,
          account.apiKey,
          `mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id } } }`,
          { input: { url: urls[i], events } },
        );
        ids[i] = data.createWebhook.webhook.id;
      }
    }),
  );
  return ids;
}

export async function setWebhookStatus(service: Service, account: Account, ids: string[], status: "active" | "disabled") {
  for (const id of ids) {
    await gqlOk(
      service.setup,
      account.apiKey,
      `mutation($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { id } }`,
      { id, input: { status } },
    );
  }
}

export const PUBLISH_MUTATION = `mutation($input: PublishEventInput!) { publishEvent(input: $input) { id } }`;

let sequence = 0;
/** `data` of an agent_created event, about 200 bytes in the webhook body, stamped with the send time. */
export function eventData(tag: string): Record<string, unknown> {
  const n = ++sequence;
  return {
    agent_id: `agent_${tag}_${n}`,
    name: "Benchmark assistant with a name of ordinary length",
    created_by: `user_${n % 1000}`,
    sent_at: nowMs(),
  };
}
