import { ensureAdminKey } from "./auth/service.ts";
import { Redis } from "ioredis";
import { createRateLimiter } from "./auth/rate-limit.ts";
import { createAuthenticator } from "./auth/viewer.ts";
import { emitSystemEvent } from "./events/system.ts";
import type { Config } from "./config.ts";
import type { App } from "./context.ts";
import { createDatabase } from "./db/client.ts";
import { startEmbeddedPostgres } from "./db/embedded.ts";
import { applyMigrations } from "./db/migrator.ts";
import { createBullmqQueue } from "./delivery/bullmq-queue.ts";
import { createSender } from "./delivery/http.ts";
import { createMemoryQueue } from "./delivery/memory-queue.ts";
import { resumeWebhookDeliveries } from "./delivery/service.ts";
import { createDeliveryWorker, type DeliveryWorker } from "./delivery/worker.ts";
import type { Logger } from "./lib/logger.ts";
import { createInProcessPubSub, createRedisPubSub, topics, type KeyRevokedMessage } from "./pubsub/pubsub.ts";
import { createDestinationGuard, createLiteralGuard, guardedLookup, type LookupAll } from "./delivery/ssrf.ts";

export interface AppHandle {
  app: App;
  /** The delivery worker, when the role runs one (`all`, `worker`). */
  worker: DeliveryWorker | undefined;
  /** The generated admin key when this start created it (print it once), else null. */
  generatedAdminKey: string | null;
  /** The database the app uses (the embedded server's URL when DATABASE_URL is unset). */
  databaseUrl: string;
  /** Starts the worker (if any). */
  start(): Promise<void>;
  /** Stops the worker (in-flight attempts finish), then closes queue, pub/sub and database. */
  close(): Promise<void>;
}

/**
 * Opens the database (embedded PGlite when DATABASE_URL is unset), applies pending migrations,
 * and wires the services of the configured role: pub/sub and queue in process or on Redis.
 */
export interface AppOptions {
  /** The resolver behind the SSRF checks (tests stand in a rebinding DNS). Default: the system's. */
  lookup?: LookupAll;
}

export async function createApp(config: Config, log: Logger, options: AppOptions = {}): Promise<AppHandle> {
  const embedded = config.DATABASE_URL ? undefined : await startEmbeddedPostgres(config.DATA_DIR);
  const databaseUrl = config.DATABASE_URL ?? embedded!.connectionString;
  const closers: Array<() => Promise<void>> = [async () => embedded?.stop()];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch((error: unknown) => log.warn({ err: error }, "close failed"));
  };
  try {
    const applied = await applyMigrations({ connectionString: databaseUrl, log: (msg) => log.debug(msg) });
    for (const name of applied) log.info({ migration: name }, "applied migration");
    const { prisma: db, sql } = createDatabase(databaseUrl, { max: embedded ? 1 : 10 });
    closers.push(async () => {
      await db.$disconnect();
      await sql.end().catch(() => {});
    });
    const generatedAdminKey = await ensureAdminKey(db, config.ADMIN_API_KEY);

    const pubsub = config.REDIS_URL ? createRedisPubSub(config.REDIS_URL, config.REDIS_PREFIX) : createInProcessPubSub();
    closers.push(() => pubsub.close());
    const queue = config.REDIS_URL
      ? createBullmqQueue({
          redisUrl: config.REDIS_URL,
          prefix: config.REDIS_PREFIX,
          lockDurationMs: config.WEBHOOK_TIMEOUT + 5_000,
        })
      : createMemoryQueue();
    closers.push(() => queue.close());

    const redis = config.REDIS_URL ? new Redis(config.REDIS_URL, { maxRetriesPerRequest: 2 }) : undefined;
    if (redis) closers.push(async () => void (await redis.quit().catch(() => {})));

    const app: App = {
      config,
      log,
      db,
      sql,
      auth: createAuthenticator({
        db,
        adminApiKey: config.ADMIN_API_KEY,
        recheckMs: config.API_KEY_RECHECK_INTERVAL,
        onError: (error, what) => log.warn({ err: error }, what),
      }),
      limiter: createRateLimiter({
        points: config.API_RATE_LIMIT.points,
        windowMs: config.API_RATE_LIMIT.windowMs,
        prefix: config.REDIS_PREFIX,
        ...(redis ? { redis } : {}),
        onExceeded: (viewer, limit) => {
          log.warn({ keyId: viewer.keyId, accountId: viewer.accountId }, "API rate limit exceeded");
          void emitSystemEvent(app, viewer.accountId!, "rate_limit_exceeded", {
            ...limit,
            api_key_id: viewer.keyId,
          });
        },
      }),
      guard: createDestinationGuard({ allowPrivate: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS, lookup: options.lookup }),
      pubsub,
      queue,
    };
    closers.push(async () => app.auth.close());
    if (config.ROLE !== "worker") {
      // revocations announced by any process (this one's own arrive too; handling one twice is harmless)
      const revocations = pubsub.subscribe<KeyRevokedMessage>(topics.keysRevoked());
      void (async () => {
        for await (const message of revocations) {
          if (typeof message?.keyId === "string") app.auth.revoked(message.keyId);
        }
      })().catch((error: unknown) => log.warn({ err: error }, "stopped listening for key revocations"));
      closers.push(async () => void (await revocations.return?.()));
    }
    app.onWebhookReactivated = async (webhook) => {
      const count = await resumeWebhookDeliveries(app, webhook.id);
      if (count > 0) log.info({ webhookId: webhook.id, count }, "webhook active again; resuming its deliveries");
    };

    let worker: DeliveryWorker | undefined;
    if (config.ROLE !== "api") {
      const sender = createSender({
        timeoutMs: config.WEBHOOK_TIMEOUT,
        // as many connections per origin as attempts in flight, so no attempt's deadline runs
        // while it waits for a connection
        connectionsPerOrigin: config.WORKER_CONCURRENCY,
        ...(config.WEBHOOK_ALLOW_PRIVATE_NETWORKS ? {} : { lookup: guardedLookup(options.lookup) }),
      });
      closers.push(() => sender.close());
      worker = createDeliveryWorker(
        {
          config,
          db,
          sql,
          log,
          queue,
          pubsub,
          sender,
          guard: createLiteralGuard({ allowPrivate: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS }),
        },
        {
          concurrency: config.WORKER_CONCURRENCY,
          maxPerWebhook: config.WEBHOOK_MAX_IN_FLIGHT,
          sweepIntervalMs: config.WEBHOOK_SWEEP_INTERVAL,
        },
      );
    }

    return {
      app,
      worker,
      generatedAdminKey,
      databaseUrl,
      async start() {
        await worker?.start();
      },
      async close() {
        await worker?.stop();
        await closeAll();
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
