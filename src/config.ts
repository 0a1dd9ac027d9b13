import net from "node:net";
import { z } from "zod";
import { parseDuration } from "./lib/duration.ts";

const duration = z.string().transform((text, ctx) => {
  try {
    return parseDuration(text);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
    return z.NEVER;
  }
});

const boolean = z
  .enum(["true", "false", "1", "0", "yes", "no"], { message: "must be true or false" })
  .transform((v) => v === "true" || v === "1" || v === "yes");

/**
 * Every environment variable the service reads (CONTRACT §1). This module is the only reader of
 * `process.env`; everything else receives a `Config`.
 */
const schema = z.object({
  /** HTTP + WebSocket port. */
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  /** Bind address. */
  HOST: z
    .string()
    .refine(
      (host) => net.isIP(host) !== 0 || /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host),
      "must be an IP address or a host name",
    )
    .default("0.0.0.0"),
  /** `postgresql://…`; unset = embedded PostgreSQL (PGlite) stored in DATA_DIR. */
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgresql:// URL")
    .optional(),
  /** Where the embedded database lives. */
  DATA_DIR: z.string().min(1).default("./.data"),
  /** `redis://…`; unset = in-process pub/sub and delivery queue. */
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL")
    .optional(),
  /** `all`, `api` (HTTP and WebSocket) or `worker` (deliveries only). */
  ROLE: z.enum(["all", "api", "worker"]).default("all"),
  /** Accepted as the admin key; when unset one is generated on first start and printed once. */
  ADMIN_API_KEY: z.string().min(16, "must be at least 16 characters").optional(),
  /** Waits before each retry; its length is the number of retries. */
  WEBHOOK_RETRY_SCHEDULE: z
    .string()
    .default("10s,30s,2m")
    .transform((text, ctx) => {
      const parts = text.split(",").map((p) => p.trim()).filter((p) => p !== "");
      try {
        return parts.map(parseDuration);
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
        return z.NEVER;
      }
    }),
  /** Per attempt: connect + headers + body. */
  WEBHOOK_TIMEOUT: duration.default(10_000).pipe(z.number().int().positive("must be more than 0")),
  /** Allow webhook URLs that resolve to non-public addresses. */
  WEBHOOK_ALLOW_PRIVATE_NETWORKS: boolean.default(false),
  /** Requests per API key per second, GraphQL and REST together: `100/s`, `6000/m`. */
  API_RATE_LIMIT: z
    .string()
    .default("100/s")
    .transform((text, ctx) => {
      const match = /^\s*(\d+)\s*\/\s*(\d*)\s*(ms|s|m|h)\s*$/.exec(text);
      if (!match || Number(match[1]) < 1) {
        ctx.addIssue({ code: "custom", message: `"${text}" is not a rate (use e.g. 100/s or 6000/m)` });
        return z.NEVER;
      }
      const windowMs = parseDuration(`${match[2] || "1"}${match[3]}`);
      if (windowMs < 1000 || windowMs % 1000 !== 0) {
        ctx.addIssue({ code: "custom", message: `"${text}": the window must be whole seconds (e.g. 100/s, 6000/m)` });
        return z.NEVER;
      }
      return { points: Number(match[1]), windowMs, text: text.trim() };
    }),
  /** Deliveries one worker process attempts at the same time. */
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(10_000).default(500),
  /**
   * Requests one worker process has open at the same time to one webhook; its further deliveries
   * wait, unclaimed, without taking a worker slot, so one slow endpoint cannot hold every slot.
   */
  WEBHOOK_MAX_IN_FLIGHT: z.coerce.number().int().min(1).max(10_000).default(100),
  /** How often a worker looks for pending deliveries that no queue holds (after a crash or a Redis flush). */
  WEBHOOK_SWEEP_INTERVAL: duration.default(5_000).pipe(z.number().int().positive("must be more than 0")),
  /**
   * How often an API process checks the keys its open WebSocket connections and subscriptions use
   * against the database (a revocation ends them at once when its pub/sub announcement arrives;
   * this catches one that was lost).
   */
  API_KEY_RECHECK_INTERVAL: duration.default(30_000).pipe(z.number().int().positive("must be more than 0")),
  /** Prefix of every Redis key (queue and pub/sub), so deployments can share one Redis. */
  REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, _ . - only").default("spawn"),
  /** pino level. */
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** `production` turns off GraphiQL and field suggestions. */
  NODE_ENV: z.string().default("development"),
});

export type Config = z.output<typeof schema>;

/** Variables whose value may hold a password or a key: never repeated in an error. */
const SECRET_VARIABLES = new Set(["DATABASE_URL", "REDIS_URL", "ADMIN_API_KEY"]);

/** Raised for an invalid environment; its message is one line naming the variable. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Parses and validates the environment once. Empty strings count as unset. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input = Object.fromEntries(
    Object.keys(schema.shape).flatMap((key) => {
      const value = env[key];
      return value === undefined || value.trim() === "" ? [] : [[key, value]];
    }),
  );
  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const name = String(issue.path[0] ?? "environment");
    const shown = SECRET_VARIABLES.has(name) ? "" : `=${JSON.stringify(input[name] ?? "")}`;
    throw new ConfigError(`invalid ${name}${shown}: ${issue.message}`);
  }
  return result.data;
}
