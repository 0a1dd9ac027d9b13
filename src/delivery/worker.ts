import type { Config } from "../config.ts";
import type { Db } from "../db/client.ts";
import { newId } from "../lib/ids.ts";
import type { Logger } from "../lib/logger.ts";
import { topics, type PubSub } from "../pubsub/pubsub.ts";
import type { DestinationGuard } from "../webhooks/validation.ts";
import { deliveryMessage, type DeliveryMessage } from "./messages.ts";
import type { AttemptResult, Sender } from "./http.ts";
import type { DeliveryJob, DeliveryQueue } from "./queue.ts";
import { classify } from "./retry.ts";
import { signatureHeaders, webhookBody } from "./signing.ts";

export interface WorkerDeps {
  config: Config;
  db: Db;
  log: Logger;
  queue: DeliveryQueue;
  pubsub: PubSub;
  sender: Sender;
  guard: DestinationGuard;
}

export interface WorkerOptions {
  concurrency: number;
  /** How often the sweeper looks for pending deliveries that no queue holds. */
  sweepIntervalMs: number;
}

interface Claimed {
  id: string;
  accountId: string;
  webhookId: string;
  eventId: string;
  attemptCount: number;
  createdAt: Date;
  url: string;
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
  type: string;
  timestamp: number;
  data: unknown;
}

/** A job may run this early (timers and Redis promotion are not exact). */
const DUE_TOLERANCE_MS = 250;
const SWEEP_BATCH = 5_000;

/**
 * The delivery worker: claims a delivery with a lease (so two workers never attempt it at once),
 * signs and sends it, records the attempt and the delivery's new state in one transaction, then
 * publishes the change and schedules the next try. A sweeper re-enqueues pending, due, unleased
 * deliveries at start and periodically, so nothing the database holds is lost.
 */
export function createDeliveryWorker(deps: WorkerDeps, options: WorkerOptions) {
  const { config, db, log, queue, pubsub, sender, guard } = deps;
  const schedule = config.WEBHOOK_RETRY_SCHEDULE;
  const leaseMs = config.WEBHOOK_TIMEOUT + 5_000;
  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> | undefined;
  let stopped = false;

  async function claim(deliveryId: string): Promise<Claimed | undefined> {
    const rows = await db.$queryRaw<Claimed[]>`
      UPDATE "Delivery" AS d
      SET "leaseUntil" = now() + ${leaseMs}::int * interval '1 millisecond'
      FROM "Webhook" AS w, "Event" AS e
      WHERE d.id = ${deliveryId}
        AND w.id = d."webhookId" AND e.id = d."eventId"
        AND d.status = 'pending' AND w.status = 'active'
        AND d."nextAttemptAt" <= now() + ${DUE_TOLERANCE_MS}::int * interval '1 millisecond'
        AND (d."leaseUntil" IS NULL OR d."leaseUntil" < now())
      RETURNING d.id, d."accountId", d."webhookId", d."eventId", d."attemptCount", d."createdAt",
        w.url, w.secret, w."previousSecret", w."previousSecretExpiresAt",
        e.type::text AS type, e."timestamp", e.data`;
    return rows[0];
  }

  async function attempt(delivery: Claimed): Promise<AttemptResult> {
    const started = performance.now();
    const refused = await guard(new URL(delivery.url)).catch((error: Error) => error.message);
    if (refused) {
      return {
        succeeded: false,
        responseStatus: null,
        responseBody: null,
        error: `blocked: ${refused}`,
        durationMs: Math.round(performance.now() - started),
      };
    }
    const body = webhookBody(delivery);
    return sender.send(delivery.url, signatureHeaders(delivery, delivery.eventId, body), body);
  }

  async function handle(job: DeliveryJob): Promise<void> {
    const delivery = await claim(job.deliveryId);
    if (!delivery) return;
    const startedAt = new Date();
    const result = await attempt(delivery);
    const number = delivery.attemptCount + 1;
    const outcome = classify(result, number, schedule);
    const status = outcome.kind === "delivered" ? "succeeded" : outcome.kind === "retry" ? "pending" : "failed";
    const nextAttemptAt = outcome.kind === "retry" ? new Date(Date.now() + outcome.delayMs) : null;

    const recorded = await db.$transaction([
      db.deliveryAttempt.create({
        data: {
          id: newId("att"),
          deliveryId: delivery.id,
          number,
          startedAt,
          durationMs: result.durationMs,
          responseStatus: result.responseStatus,
          responseBody: result.responseBody,
          error: result.error,
          succeeded: result.succeeded,
        },
      }),
      db.delivery.update({
        where: { id: delivery.id },
        data: { status, attemptCount: number, lastAttemptAt: startedAt, nextAttemptAt, leaseUntil: null },
      }),
      ...(outcome.kind === "give-up" && outcome.disable
        ? [
            db.webhook.updateMany({
              where: { id: delivery.webhookId, status: "active" },
              data: { status: "disabled", disabledReason: outcome.reason },
            }),
          ]
        : []),
    ]).then(
      () => true,
      (error: unknown) => {
        // The webhook (and so the delivery) was deleted while the attempt was in flight.
        if ((error as { code?: string }).code === "P2025" || (error as { code?: string }).code === "P2003") return false;
        throw error;
      },
    );
    if (!recorded) return;

    log.debug(
      { deliveryId: delivery.id, webhookId: delivery.webhookId, number, status, error: result.error },
      "delivery attempt",
    );
    if (outcome.kind === "give-up" && outcome.disable) {
      log.warn({ webhookId: delivery.webhookId, reason: outcome.reason }, "webhook disabled");
    }
    const message: DeliveryMessage = deliveryMessage({
      id: delivery.id,
      accountId: delivery.accountId,
      webhookId: delivery.webhookId,
      eventId: delivery.eventId,
      status,
      attemptCount: number,
      lastAttemptAt: startedAt,
      nextAttemptAt,
      createdAt: delivery.createdAt,
    });
    await Promise.all([
      pubsub.publish(topics.deliveries(delivery.accountId), message).catch((error: unknown) => {
        log.warn({ err: error }, "could not publish a delivery update");
      }),
      outcome.kind === "retry"
        ? queue.enqueue([{ deliveryId: delivery.id, attempt: number, delayMs: outcome.delayMs }])
        : undefined,
    ]);
  }

  /** Re-enqueues pending, due, unleased deliveries of active webhooks; `graceMs` skips fresh ones. */
  async function sweep(graceMs: number): Promise<number> {
    const rows = await db.$queryRaw<Array<{ id: string; attemptCount: number }>>`
      SELECT d.id, d."attemptCount" FROM "Delivery" AS d
      JOIN "Webhook" AS w ON w.id = d."webhookId"
      WHERE d.status = 'pending' AND w.status = 'active'
        AND d."nextAttemptAt" <= now() - ${graceMs}::int * interval '1 millisecond'
        AND (d."leaseUntil" IS NULL OR d."leaseUntil" < now())
      ORDER BY d."nextAttemptAt"
      LIMIT ${SWEEP_BATCH}`;
    if (rows.length > 0) {
      await queue.enqueue(rows.map((r) => ({ deliveryId: r.id, attempt: r.attemptCount })));
      log.debug({ count: rows.length }, "sweeper re-enqueued deliveries");
    }
    return rows.length;
  }

  function scheduleSweep(): void {
    if (stopped) return;
    sweepTimer = setTimeout(() => {
      sweeping = sweep(options.sweepIntervalMs)
        .then(() => undefined)
        .catch((error: unknown) => log.warn({ err: error }, "sweep failed"))
        .finally(scheduleSweep);
    }, options.sweepIntervalMs);
  }

  return {
    handle,
    sweep,
    async start(): Promise<void> {
      stopped = false;
      await queue.consume(
        (job) =>
          handle(job).catch((error: unknown) => {
            log.error({ err: error, deliveryId: job.deliveryId }, "delivery attempt could not be recorded");
            throw error;
          }),
        options.concurrency,
      );
      await sweep(0);
      scheduleSweep();
    },
    /** Stops taking new work and lets the attempts in flight finish (bounded by the timeout). */
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(sweepTimer);
      await sweeping;
      await queue.stopConsuming();
    },
  };
}

export type DeliveryWorker = ReturnType<typeof createDeliveryWorker>;
