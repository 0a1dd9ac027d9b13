import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { onCleanup } from "./cleanup.ts";

export const repoRoot = path.resolve(import.meta.dirname, "../..");

export interface Child {
  name: string;
  pid: number;
  child: ChildProcess;
  /** The first match of `ready` in stdout. */
  ready: RegExpExecArray;
  output(): { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM (or `signal`), then SIGKILL to the whole process group after `graceMs`. */
  stop(graceMs?: number, signal?: NodeJS.Signals): Promise<void>;
  /** Resident set size in bytes (Linux /proc), or null once gone. */
  rss(): number | null;
}

export interface StartOptions {
  name: string;
  /** A .ts file run with `node --import tsx` (so the pid is the program itself, not a tsx wrapper). */
  script: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** stdout pattern that says the process is ready. */
  ready: RegExp;
  timeoutMs?: number;
  ipc?: boolean;
  /** Extra node flags (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** Keep at most this much output in memory. */
  maxOutput?: number;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // gone
    }
  }
}

/** Starts a child in its own process group and waits for its ready line; it is stopped at cleanup. */
export async function startChild(options: StartOptions): Promise<Child> {
  const maxOutput = options.maxOutput ?? 200_000;
  const child = spawn(
    process.execPath,
    [...(options.nodeFlags ?? []), "--import", "tsx", options.script, ...(options.args ?? [])],
    {
      cwd: repoRoot,
      env: options.env ?? process.env,
      stdio: options.ipc ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"],
      detached: true,
    },
  );
  const out = { stdout: "", stderr: "" };
  let gone = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("close", (code, signal) => {
      gone = true;
      resolve({ code, signal });
    }),
  );
  child.stdout!.setEncoding("utf8");
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    out.stderr = (out.stderr + chunk).slice(-maxOutput);
  });

  const stop = async (graceMs = 10_000, signal: NodeJS.Signals = "SIGTERM") => {
    if (gone) return;
    try {
      child.kill(signal);
    } catch {
      // gone
    }
    let timer: NodeJS.Timeout | undefined;
    const killed = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs))),
    ]);
    clearTimeout(timer);
    if (killed) {
      process.stderr.write(`[bench] ${options.name} (pid ${child.pid}) did not stop within ${graceMs} ms; SIGKILL\n`);
    }
    // Whatever it started (and the process itself if still there) goes too.
    killGroup(child, "SIGKILL");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3_000))]);
  };
  const removeCleanup = onCleanup(options.name, () => stop(5_000));

  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer = setTimeout(() => fail(`did not get ready within ${timeoutMs} ms`), timeoutMs);
    const fail = (why: string) => {
      clearTimeout(timer);
      killGroup(child, "SIGKILL");
      reject(new Error(`${options.name} ${why}\n--- stdout\n${out.stdout.slice(-3000)}\n--- stderr\n${out.stderr.slice(-3000)}`));
    };
    let matched = false;
    child.stdout!.on("data", (chunk: string) => {
      out.stdout = (out.stdout + chunk).slice(-maxOutput);
      if (matched) return;
      const match = options.ready.exec(out.stdout);
      if (match) {
        matched = true;
        clearTimeout(timer);
        resolve(match);
      }
    });
    void exited.then((exit) => {
      if (!matched) fail(`exited early (${JSON.stringify(exit)})`);
    });
  });

  return {
    name: options.name,
    pid: child.pid!,
    child,
    ready,
    output: () => ({ ...out }),
    exited,
    async stop(graceMs, signal) {
      removeCleanup();
      await stop(graceMs, signal);
    },
    rss() {
      if (gone) return null;
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
        const match = /VmRSS:\s+(\d+)\s+kB/.exec(status);
        return match ? Number(match[1]) * 1024 : null;
      } catch {
        return null;
      }
    },
  };
}

/** Sends a request over IPC and waits for the reply with the same id. */
export function ipcRequest<T>(child: ChildProcess, message: Record<string, unknown>, timeoutMs = 60_000): Promise<T> {
  const id = Math.random().toString(36).slice(2);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off("message", onMessage);
      reject(new Error(`IPC ${String(message.cmd)} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (reply: any) => {
      if (reply?.id !== id) return;
      clearTimeout(timer);
      child.off("message", onMessage);
      if (reply.error) reject(new Error(reply.error));
      else resolve(reply.result as T);
    };
    child.on("message", onMessage);
    child.send({ ...message, id });
  });
}
