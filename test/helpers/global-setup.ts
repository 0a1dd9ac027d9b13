import net from "node:net";
import type { TestProject } from "vitest/node";

export interface Services {
  postgres: { url: string; available: boolean; reason?: string };
  redis: { url: string; available: boolean; reason?: string };
}

declare module "vitest" {
  export interface ProvidedContext {
    services: Services;
  }
}

function reachable(url: string): Promise<string | undefined> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    const done = (reason?: string) => {
      socket.destroy();
      resolve(reason);
    };
    socket.setTimeout(1_000, () => done(`nothing answered at ${hostname}:${port} within 1s`));
    socket.once("connect", () => done());
    socket.once("error", (error) => done(`${hostname}:${port}: ${error.message}`));
  });
}

/**
 * Finds out once whether PostgreSQL and Redis are there. Without them the service-backed suites
 * are skipped (and say why); under CI=true they are required and a missing one fails the run.
 */
export default async function setup(project: TestProject): Promise<void> {
  const postgresUrl = process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/test";
  const redisUrl = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
  const [pgReason, redisReason] = await Promise.all([reachable(postgresUrl), reachable(redisUrl)]);
  const services: Services = {
    postgres: { url: postgresUrl, available: !pgReason, ...(pgReason ? { reason: pgReason } : {}) },
    redis: { url: redisUrl, available: !redisReason, ...(redisReason ? { reason: redisReason } : {}) },
  };
  const missing = Object.entries(services).filter(([, s]) => !s.available);
  if (missing.length > 0) {
    const lines = missing.map(([name, s]) => `${name} unavailable (${s.reason})`);
    if (process.env.CI === "true") {
      throw new Error(`CI=true requires PostgreSQL and Redis: ${lines.join("; ")}`);
    }
    console.warn(`\n[spawn-webhooks tests] skipping service-backed suites: ${lines.join("; ")}\n`);
  }
  project.provide("services", services);
}
