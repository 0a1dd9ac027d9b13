import { ensureAdminKey } from "./auth/service.ts";
import { createAuthenticator } from "./auth/viewer.ts";
import type { Config } from "./config.ts";
import type { App } from "./context.ts";
import { createPrismaClient } from "./db/client.ts";
import { startEmbeddedPostgres } from "./db/embedded.ts";
import { applyMigrations } from "./db/migrator.ts";
import { createBullmqQueue } from "./delivery/bullmq-queue.ts";
import { createSender } from "./delivery/http.ts";
import { createMemoryQueue } from "./delivery/memory-queue.ts";
import { resumeWebhookDeliveries } from "./delivery/service.ts";
import { createDeliveryWorker, type DeliveryWorker } from "./delivery/worker.ts";
import type { Logger } from "./lib/logger.ts";
import { createInProcessPubSub, createRedisPubSub } from "./pubsub/pubsub.ts";
import { allowAllDestinations } from "./webhooks/validation.ts";

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
export async function createApp(config: Config, log: Logger): Promise<AppHandle> {
  const embedded = config.DATABASE_URL ? undefined : await startEmbeddedPostgres(config.DATA_DIR);
  const databaseUrl = config.DATABASE_URL ?? embedded!.connectionString;
  const closers: Array<() => Promise<void>> = [async () => embedded?.stop()];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch((error: unknown) => log.warn({ err: error }, "close failed"));
  };
  try {
    const applied = await applyMigrations({ connectionString: databaseUrl, log: (msg) => log.debug(msg) });
    for (const name of applied) log.info({ migration: name }, "applied migration");
    const db = createPrismaClient(databaseUrl, { max: embedded ? 1 : 10 });
    closers.push(() => db.$disconnect());
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

    const app: App = {
      config,
      log,
      db,
      auth: createAuthenticator({ db, adminApiKey: config.ADMIN_API_KEY }),
      guard: allowAllDestinations,
      pubsub,
      queue,
    };
    app.onWebhookReactivated = async (webhook) => {
      const count = await resumeWebhookDeliveries(app, webhook.id);
      if (count > 0) log.info({ webhookId: webhook.id, count }, "webhook active again; resuming its deliveries");
    };

    let worker: DeliveryWorker | undefined;
    if (config.ROLE !== "api") {
      const sender = createSender({ timeoutMs: config.WEBHOOK_TIMEOUT });
      closers.push(() => sender.close());
      worker = createDeliveryWorker(
        { config, db, log, queue, pubsub, sender, guard: app.guard },
        { concurrency: config.WORKER_CONCURRENCY, sweepIntervalMs: config.WEBHOOK_SWEEP_INTERVAL },
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
