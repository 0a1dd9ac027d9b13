import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync } from "node:fs";
import path from "node:path";
import { print, type DocumentNode } from "graphql";
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { createApp, type AppHandle, type AppOptions } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { buildServer } from "../../src/http/server.ts";
import { createLogger } from "../../src/lib/logger.ts";
import type { Backend } from "./backends.ts";

/** Every test app of the suite logs here, so a test can search what was logged. */
export const TEST_LOG_DIR = path.resolve(import.meta.dirname, "../../.test-logs");

export interface GraphqlResult<T> {
  status: number;
  data?: T | null;
  errors?: Array<{ message: string; extensions?: { code?: string; [key: string]: unknown } }>;
}

export interface TestApp {
  url: string;
  wsUrl: string;
  baseUrl: string;
  adminKey: string;
  handle: AppHandle;
  /** POSTs a GraphQL operation with `Authorization: Bearer <key>` (no header when key is null). */
  gql<T = any, V = Record<string, unknown>>(
    key: string | null,
    document: TypedDocumentNode<T, V> | DocumentNode | string,
    variables?: V,
    headers?: Record<string, string>,
  ): Promise<GraphqlResult<T>>;
  /** A new account through the admin key: its id and first API key. */
  createAccount(name?: string): Promise<{ accountId: string; apiKey: string }>;
  stop(): Promise<void>;
}

/**
 * Starts the whole service in this process on a free port, against the backend's database, with
 * short retry timings and private networks allowed (receivers listen on loopback).
 */
export async function startTestApp(
  backend: Backend,
  env: Record<string, string> = {},
  options: AppOptions = {},
): Promise<TestApp> {
  const adminKey = `sk_admin_test_${randomBytes(12).toString("hex")}`;
  const config = loadConfig({
    DATA_DIR: backend.dataDir,
    ...(backend.databaseUrl ? { DATABASE_URL: backend.databaseUrl } : {}),
    ...(backend.redisUrl ? { REDIS_URL: backend.redisUrl, REDIS_PREFIX: backend.redisPrefix } : {}),
    HOST: "127.0.0.1",
    PORT: "0",
    ADMIN_API_KEY: adminKey,
    LOG_LEVEL: "debug",
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true",
    WEBHOOK_RETRY_SCHEDULE: "100ms,200ms,300ms",
    WEBHOOK_TIMEOUT: "2s",
    WEBHOOK_SWEEP_INTERVAL: "500ms",
    API_RATE_LIMIT: "100000/s",
    ...env,
  });
  mkdirSync(TEST_LOG_DIR, { recursive: true });
  const logStream = createWriteStream(path.join(TEST_LOG_DIR, `app-${process.pid}.log`), { flags: "a" });
  const log = createLogger(config.LOG_LEVEL, logStream, { secrets: [adminKey] });
  const handle = await createApp(config, log, options);
  const server = buildServer(handle.app, { api: handle.app.config.ROLE !== "worker" });
  await handle.start();
  const { url, port } = await server.start(0, "127.0.0.1");
  const baseUrl = `http://127.0.0.1:${port}`;

  const gql: TestApp["gql"] = async (key, document, variables, headers = {}) => {
    const query = typeof document === "string" ? document : print(document);
    const response = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...headers,
      },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as Omit<GraphqlResult<never>, "status">;
    return { status: response.status, ...body };
  };

  return {
    url,
    wsUrl: url.replace(/^http/, "ws"),
    baseUrl,
    adminKey,
    handle,
    gql,
    async createAccount(name = "Test account") {
      const result = await gql<{ createAccount: { account: { id: string }; apiKey: string } }>(
        adminKey,
        `mutation ($name: String!) { createAccount(name: $name) { account { id } apiKey } }`,
        { name },
      );
      if (!result.data) throw new Error(`createAccount failed: ${JSON.stringify(result.errors)}`);
      return { accountId: result.data.createAccount.account.id, apiKey: result.data.createAccount.apiKey };
    },
    async stop() {
      await server.stop();
      await handle.close();
      await new Promise<void>((resolve) => logStream.end(() => resolve()));
    },
  };
}
