import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { freePort } from "./spawn.ts";

const repoRoot = path.resolve(import.meta.dirname, "../..");
const tsxBin = path.join(repoRoot, "node_modules", ".bin", "tsx");

/** Every variable of CONTRACT §1: removed from the inherited environment so only the test's count. */
const CONFIG_VARIABLES = [
  "PORT",
  "HOST",
  "DATABASE_URL",
  "DATA_DIR",
  "REDIS_URL",
  "ROLE",
  "ADMIN_API_KEY",
  "WEBHOOK_RETRY_SCHEDULE",
  "WEBHOOK_TIMEOUT",
  "WEBHOOK_ALLOW_PRIVATE_NETWORKS",
  "API_RATE_LIMIT",
  "LOG_LEVEL",
  "NODE_ENV",
];

/** The environment of a child: the parent's without service configuration, plus `env`. */
function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const name of CONFIG_VARIABLES) delete base[name];
  for (const name of Object.keys(base)) if (name.startsWith("VITEST") || name.startsWith("TEST_")) delete base[name];
  // A developer's .env in the repository must not change what the test sets or leaves unset.
  base.DOTENV_PATH = path.join(repoRoot, ".test-logs", "no-such.env");
  return { ...base, ...env };
}

export { freePort };

export interface ServiceProcess {
  child: ChildProcess;
  /** The GraphQL URL the process printed ("listening on <url>"). */
  url: string;
  stdout(): string;
  stderr(): string;
  /** Sends `signal` and resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

interface Running {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function run(env: Record<string, string>): Running {
  const child = spawn(tsxBin, ["src/main.ts"], { cwd: repoRoot, env: childEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  const out = { stdout: "", stderr: "" };
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (out.stdout += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (out.stderr += chunk));
  // "close" comes after "exit" once stdout and stderr are drained.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  return { child, out, exited };
}

/**
 * Starts `tsx src/main.ts` (what `npm start` runs) and resolves once it prints
 * "listening on <url>". Rejects with its output if it exits first.
 */
export async function startServiceProcess(env: Record<string, string>): Promise<ServiceProcess> {
  const { child, out, exited } = run(env);
  const url = await new Promise<string>((resolve, reject) => {
    const check = () => {
      const match = /listening on (\S+)/.exec(out.stdout);
      if (match) {
        child.stdout!.off("data", check);
        resolve(match[1]!);
      }
    };
    child.stdout!.on("data", check);
    void exited.then(({ code, signal }) =>
      reject(new Error(`service exited (${code ?? signal}) before listening:\n${out.stdout}\n${out.stderr}`)),
    );
  });
  return {
    child,
    url,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs `tsx src/main.ts` expecting it to exit by itself (a bad configuration); kills it otherwise. */
export async function runServiceToExit(
  env: Record<string, string>,
  timeoutMs = 20_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const { child, out, exited } = run(env);
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const result = await exited;
  clearTimeout(timer);
  return { ...result, stdout: out.stdout, stderr: out.stderr };
}
