import { spawn as spawnChild, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import path from "node:path";
import type { Backend } from "./backends.ts";

const repoRoot = path.resolve(import.meta.dirname, "../..");

/** Every variable the service reads (src/config.ts): none is inherited, only the test's count. */
const SERVICE_VARIABLES = [
  "PORT",
  "HOST",
  "DATABASE_URL",
  "DATA_DIR",
  "REDIS_URL",
  "REDIS_PREFIX",
  "ROLE",
  "ADMIN_API_KEY",
  "WEBHOOK_RETRY_SCHEDULE",
  "WEBHOOK_TIMEOUT",
  "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
  "WEBHOOK_SWEEP_INTERVAL",
  "API_KEY_RECHECK_INTERVAL",
  "WEBHOOK_MAX_IN_FLIGHT",
  "WORKER_CONCURRENCY",
  "API_RATE_LIMIT",
  "LOG_LEVEL",
  "NODE_ENV",
];

/** A port nothing listens on right now (the OS picks it; a race with other programs is unlikely). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcess {
  pid: number;
  role: string;
  /** The GraphQL URL from the "listening on <url>" line. */
  url: string;
  wsUrl: string;
  /** http://host:port, for /healthz. */
  baseUrl: string;
  adminKey: string;
  /** Everything written so far. */
  output(): { stdout: string; stderr: string };
  /** Resolves when the process has exited (stdout and stderr drained). */
  exited: Promise<Exit>;
  /** Sends `signal` to the service process and waits at most `timeoutMs` for it to exit. */
  signal(signal: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
  /** Ends the process (and anything it started) if it is still running. */
  dispose(): Promise<void>;
}

export interface SpawnOptions {
  /** ROLE: all, api or worker. */
  role: "all" | "api" | "worker";
  /** The database and Redis of a test backend: DATABASE_URL (or DATA_DIR), REDIS_URL, REDIS_PREFIX. */
  backend: Backend;
  /** ADMIN_API_KEY; processes of one deployment share one. */
  adminKey: string;
  /** More variables, overriding the defaults below. */
  env?: Record<string, string>;
  /** How long to wait for "listening on". */
  startTimeoutMs?: number;
}

/** A fixed admin key for a group of processes. */
export function newAdminKey(): string {
  return `sk_admin_proc_${randomBytes(12).toString("hex")}`;
}

/**
 * Starts a real service process, `src/main.ts` under tsx, and resolves once it prints
 * "listening on <url>". The process is `node --import tsx src/main.ts` rather than the `tsx`
 * command: the `tsx` command runs the program in a child process, so a SIGKILL sent to it would
 * leave the service running as an orphan. Output goes to the test's memory (and is shown when the
 * start fails).
 */
export async function spawnService(options: SpawnOptions): Promise<ServiceProcess> {
  const { backend } = options;
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of SERVICE_VARIABLES) delete env[name];
  for (const name of Object.keys(env)) if (name.startsWith("VITEST") || name.startsWith("TEST_")) delete env[name];
  Object.assign(env, {
    // A developer's .env must not change the test (dotenv reads DOTENV_PATH).
    DOTENV_PATH: path.join(repoRoot, ".test-logs", "no-such.env"),
    ROLE: options.role,
    HOST: "127.0.0.1",
    PORT: String(port),
    ADMIN_API_KEY: options.adminKey,
    LOG_LEVEL: "warn",
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: "true",
    WEBHOOK_RETRY_SCHEDULE: "100ms,200ms,300ms",
    WEBHOOK_TIMEOUT: "2s",
    WEBHOOK_SWEEP_INTERVAL: "500ms",
    API_RATE_LIMIT: "100000/s",
    DATA_DIR: backend.dataDir,
    ...(backend.databaseUrl ? { DATABASE_URL: backend.databaseUrl } : {}),
    ...(backend.redisUrl ? { REDIS_URL: backend.redisUrl, REDIS_PREFIX: backend.redisPrefix } : {}),
    ...options.env,
  });

  const child: ChildProcess = spawnChild(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: repoRoot,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, so dispose() also ends what it started (tsx's esbuild service).
    detached: true,
  });
  const out = { stdout: "", stderr: "" };
  let exitedNow: Exit | undefined;
  const exited = new Promise<Exit>((resolve) =>
    child.once("close", (code, signal) => {
      exitedNow = { code, signal };
      resolve(exitedNow);
    }),
  );
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");

  const url = await new Promise<string>((resolve, reject) => {
    const timeoutMs = options.startTimeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      fail(new Error(`${options.role} process did not print "listening on" within ${timeoutMs}ms`));
    }, timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      killGroup(child, "SIGKILL");
      reject(new Error(`${error.message}\n--- stdout\n${out.stdout}\n--- stderr\n${out.stderr}`));
    };
    child.stdout!.on("data", (chunk: string) => {
      out.stdout += chunk;
      const match = /listening on (\S+)/.exec(out.stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.stderr!.on("data", (chunk: string) => (out.stderr += chunk));
    void exited.then((exit) => fail(new Error(`${options.role} process exited early (${JSON.stringify(exit)})`)));
  });
  const base = new URL(url);

  const signal = async (name: NodeJS.Signals, timeoutMs = 10_000): Promise<Exit> => {
    if (!exitedNow) child.kill(name);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${options.role} process (pid ${child.pid}) still running ${timeoutMs}ms after ${name}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    pid: child.pid!,
    role: options.role,
    url,
    wsUrl: url.replace(/^http/, "ws"),
    baseUrl: `${base.protocol}//${base.host}`,
    adminKey: options.adminKey,
    output: () => ({ ...out }),
    exited,
    signal,
    async dispose() {
      if (!exitedNow) killGroup(child, "SIGKILL");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    },
  };
}

/** Signals the child's process group (it was started detached), falling back to the child alone. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** POSTs a GraphQL operation to a spawned process. */
export async function gqlAt<T = any>(
  url: string,
  key: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<{ status: number; data?: T | null; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T | null; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };
  return { status: response.status, ...body };
}
