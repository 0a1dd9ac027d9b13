import type { Config } from "../config.ts";
import type { Db, Sql } from "../db/client.ts";
import { isPgError } from "../db/errors.ts";
import { createBatcher } from "../lib/batcher.ts";
import { createLimit } from "../lib/limit.ts";
import { newId } from "../lib/ids.ts";
import type { Logger } from "../lib/logger.ts";
import { topics, type PubSub } from "../pubsub/pubsub.ts";
import type { DestinationGuard } from "../webhooks/validation.ts";
import { deliveryMessage, type DeliveryBatchMessage, type DeliveryMessage } from "./messages.ts";
import type { AttemptResult, Sender } from "./http.ts";
import type { DeliveryJob, DeliveryQueue } from "./queue.ts";
import { jobKey } from "./queue.ts";
import { classify } from "./retry.ts";
import { signatureHeaders, webhookBody } from "./signing.ts";

export interface WorkerDeps {
  config: Config;
  db: Db;
  sql: Sql;
  log: Logger;
  queue: DeliveryQueue;
  pubsub: PubSub;
  sender: Sender;
  guard: DestinationGuard;
}

export interface WorkerOptions {
  concurrency: number;
  /** Attempts to one webhook at a time; the webhook's further tries wait here, unclaimed. */
  maxPerWebhook: number;
  /** How often the sweeper looks for pending deliveries that no queue holds. */
  sweepIntervalMs: number;
}

interface AttemptRecord {
  attemptId: string;
  deliveryId: string;
  webhookId: string;
  number: number;
  startedAt: Date;
  durationMs: number;
  responseStatus: number | null;
  responseBody: string | null;
  error: string | null;
  succeeded: boolean;
  status: "pending" | "succeeded" | "failed";
  nextAttemptAt: Date | null;
  disableReason: string | null;
  /** What subscribers see once the record is written. */
  message: DeliveryMessage;
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

/** PostgreSQL text cannot hold NUL characters; a receiver's answer may. */
const printable = (text: string | null) => (text === null ? null : text.replaceAll("\u0000", "\uFFFD"));

/** A job may run this early (timers and Redis promotion are not exact). */
const DUE_TOLERANCE_MS = 250;
const SWEEP_BATCH = 5_000;
/** A sweep takes at most this many of one webhook, so one long backlog cannot crowd out the rest. */
const SWEEP_PER_WEBHOOK = 500;
/** Tries of one webhook kept waiting in memory at most; beyond that the sweeper finds them later. */
const MAX_WAITING_PER_WEBHOOK = 10_000;

/**
 * The delivery worker: claims a delivery with a lease (so two workers never attempt it at once),
 * signs and sends it, records the attempt and the delivery's new state in one transaction, then
 * publishes the change and schedules the next try. A sweeper re-enqueues pending, due, unleased
 * deliveries at start and periodically, so nothing the database holds is lost.
 */
export function createDeliveryWorker(deps: WorkerDeps, options: WorkerOptions) {
  const { config, db, sql, log, queue, pubsub, sender, guard } = deps;
  const schedule = config.WEBHOOK_RETRY_SCHEDULE;
  const leaseMs = config.WEBHOOK_TIMEOUT + 5_000;
  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<void> | undefined;
  let stopped = false;

  /**
   * One statement claims a whole batch: each asked-for delivery is looked up by its primary key
   * and locked if it is pending, due, unleased and its webhook active (rows another worker holds
   * are skipped), then leased. Looking rows up one key at a time keeps the plan the same whatever
   * the table's statistics say: with `id = ANY(...)` PostgreSQL may prefer the status index when
   * it underestimates the pending backlog, which scans every pending delivery per webhook.
   */
  async function claimBatch(ids: string[]): Promise<Array<Claimed | undefined>> {
    const { rows } = await sql.query<Claimed>(
      `WITH claimable AS MATERIALIZED (
        SELECT c.id FROM unnest($1::text[]) AS wanted(id)
        CROSS JOIN LATERAL (
          SELECT d.id FROM "Delivery" AS d
          WHERE d.id = wanted.id AND d.status = 'pending'
            AND d."nextAttemptAt" <= now() + $3::int * interval '1 millisecond'
            AND (d."leaseUntil" IS NULL OR d."leaseUntil" < now())
            AND EXISTS (SELECT 1 FROM "Webhook" AS w WHERE w.id = d."webhookId" AND w.status = 'active')
          FOR UPDATE OF d SKIP LOCKED
        ) AS c
      )
      UPDATE "Delivery" AS d
      SET "leaseUntil" = now() + $2::int * interval '1 millisecond'
      FROM claimable AS c, "Webhook" AS w, "Event" AS e
      WHERE d.id = c.id AND w.id = d."webhookId" AND e.id = d."eventId"
      RETURNING d.id, d."accountId", d."webhookId", d."eventId", d."attemptCount",
        d."createdAt" AT TIME ZONE 'UTC' AS "createdAt",
        w.url, w.secret, w."previousSecret", w."previousSecretExpiresAt" AT TIME ZONE 'UTC' AS "previousSecretExpiresAt",
        e.type::text AS type, e."timestamp", e.data`,
      [ids, leaseMs, DUE_TOLERANCE_MS],
    );
    // the same delivery may be asked for twice in one batch (enqueued by publish and by the
    // sweeper): only the first asker gets the claim
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => {
      const row = byId.get(id);
      byId.delete(id);
      return row;
    });
  }
  const claim = createBatcher(claimBatch, { maxSize: 500, maxInFlight: 1 });

  /**
   * Writes a batch of attempts in one statement: the attempt rows, the deliveries' new state
   * (lease cleared) and, for a final failure, the webhook disabled — atomically. If the batch
   * fails (say, one delivery was deleted meanwhile), each record is written on its own.
   */
  async function recordBatch(records: AttemptRecord[]): Promise<boolean[]> {
    try {
      await writeRecords(records);
      return records.map(() => true);
    } catch (error) {
      if (records.length === 1) {
        if (isPgError(error, "23503")) return [false]; // the delivery (its webhook) was deleted meanwhile
        throw error;
      }
      return Promise.all(records.map((r) => recordBatch([r]).then(([ok]) => ok!)));
    }
  }
  const record = createBatcher(
    async (records: AttemptRecord[]) => {
      const written = await recordBatch(records);
      announce(records.filter((_, i) => written[i]));
      return written;
    },
    { maxSize: 500, maxInFlight: 1 },
  );

  /** Publishes the new states of a written batch: one message per account. */
  function announce(records: AttemptRecord[]): void {
    const byAccount = new Map<string, DeliveryMessage[]>();
    for (const r of records) {
      const list = byAccount.get(r.message.accountId);
      if (list) list.push(r.message);
      else byAccount.set(r.message.accountId, [r.message]);
    }
    for (const [accountId, deliveries] of byAccount) {
      const message: DeliveryBatchMessage = { deliveries };
      const failed = (error: unknown) => log.warn({ err: error }, "could not publish delivery updates");
      try {
        pubsub.publish(topics.deliveries(accountId), message).catch(failed);
      } catch (error) {
        failed(error); // the records are written whatever happens to the announcement
      }
    }
  }

  async function writeRecords(records: AttemptRecord[]): Promise<void> {
    const col = <K extends keyof AttemptRecord>(key: K) => records.map((r) => r[key]);
    const iso = (dates: Array<Date | null>) => dates.map((d) => d?.toISOString() ?? null);
    await sql.query(
      `WITH input AS (
        SELECT * FROM unnest(
          $1::text[], $2::text[], $3::text[], $4::int[], $5::timestamptz[], $6::int[], $7::int[], $8::text[],
          $9::text[], $10::boolean[], $11::text[], $12::timestamptz[], $13::text[]
        ) AS t(attempt_id, delivery_id, webhook_id, number, started_at, duration_ms, response_status,
               response_body, error, succeeded, status, next_attempt_at, disable_reason)
      ), attempts AS (
        INSERT INTO "DeliveryAttempt"
          (id, "deliveryId", number, "startedAt", "durationMs", "responseStatus", "responseBody", error, succeeded)
        SELECT attempt_id, delivery_id, number, started_at, duration_ms, response_status, response_body, error, succeeded
        FROM input
      ), disabled AS (
        UPDATE "Webhook" AS w SET status = 'disabled', "disabledReason" = input.disable_reason, "updatedAt" = now()
        FROM input
        WHERE w.id = input.webhook_id AND input.disable_reason IS NOT NULL AND w.status = 'active'
      )
      UPDATE "Delivery" AS d
      SET status = input.status::"DeliveryStatus", "attemptCount" = input.number, "lastAttemptAt" = input.started_at,
          "nextAttemptAt" = input.next_attempt_at, "leaseUntil" = NULL, "updatedAt" = now()
      FROM input WHERE d.id = input.delivery_id`,
      [
        col("attemptId"),
        col("deliveryId"),
        col("webhookId"),
        col("number"),
        iso(col("startedAt")),
        col("durationMs"),
        col("responseStatus"),
        col("responseBody"),
        col("error"),
        col("succeeded"),
        col("status"),
        iso(col("nextAttemptAt")),
        col("disableReason"),
      ],
    );
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

  const limit = createLimit(options.concurrency);
  /** Per webhook: tries admitted and not yet answered (waiting for a slot, claiming or sending). */
  const admitted = new Map<string, number>();
  /** Per webhook at its cap: tries set aside, oldest first (unclaimed; they hold no slot). */
  const waiting = new Map<string, DeliveryJob[]>();
  const waitingKeys = new Set<string>();
  /** Set-aside tries started when a slot of their webhook freed up (awaited by stop()). */
  const started = new Set<Promise<void>>();

  function run(job: DeliveryJob, sent?: () => void): Promise<void> {
    return limit(() => handle(job, sent)).catch((error: unknown) => {
      log.error({ err: error, deliveryId: job.deliveryId }, "delivery attempt could not be recorded");
      throw error;
    });
  }

  function admit(job: DeliveryJob): Promise<void> {
    const webhookId = job.webhookId;
    if (!webhookId) return run(job);
    admitted.set(webhookId, (admitted.get(webhookId) ?? 0) + 1);
    let released = false;
    // the endpoint's share ends with its answer; writing the record still holds the worker slot
    const done = () => {
      if (released) return;
      released = true;
      release(webhookId);
    };
    return run(job, done).finally(done);
  }

  /** One try of the webhook was answered (or ended): the oldest of its set-aside tries takes its place. */
  function release(webhookId: string): void {
    const left = admitted.get(webhookId)! - 1;
    if (left > 0) admitted.set(webhookId, left);
    else admitted.delete(webhookId);
    const list = waiting.get(webhookId);
    if (stopped || !list) return;
    const next = list.shift()!;
    if (list.length === 0) waiting.delete(webhookId);
    waitingKeys.delete(jobKey(next));
    const task: Promise<void> = admit(next)
      .catch(() => {}) // logged by run(); the delivery stays pending for the sweeper
      .finally(() => started.delete(task));
    started.add(task);
  }

  /**
   * The queue's handler. A try of a webhook that already has `maxPerWebhook` tries admitted is
   * set aside in memory, unclaimed, and the queue's job ends at once: it holds no worker slot, so
   * a slow or hanging webhook delays its own deliveries, not everyone's. Set-aside tries start as
   * the webhook's running ones end; if this process stops first, they are still pending in the
   * database and the sweeper enqueues them again.
   */
  function dispatch(job: DeliveryJob): Promise<void> {
    const webhookId = job.webhookId;
    if (!webhookId || (admitted.get(webhookId) ?? 0) < options.maxPerWebhook) return admit(job);
    const key = jobKey(job);
    if (waitingKeys.has(key)) return Promise.resolve(); // enqueued again (by the sweeper) while set aside
    let list = waiting.get(webhookId);
    if (!list) waiting.set(webhookId, (list = []));
    if (list.length < MAX_WAITING_PER_WEBHOOK) {
      list.push(job);
      waitingKeys.add(key);
    }
    return Promise.resolve();
  }

  /** One try: claim, send, record, schedule the next. `sent` is called once the receiver answered. */
  async function handle(job: DeliveryJob, sent?: () => void): Promise<void> {
    const delivery = await claim(job.deliveryId);
    if (!delivery) return;
    const startedAt = new Date();
    const result = await attempt(delivery);
    sent?.();
    const number = delivery.attemptCount + 1;
    const outcome = classify(result, number, schedule);
    const status: AttemptRecord["status"] =
      outcome.kind === "delivered" ? "succeeded" : outcome.kind === "retry" ? "pending" : "failed";
    const nextAttemptAt = outcome.kind === "retry" ? new Date(Date.now() + outcome.delayMs) : null;

    const recorded = await record({
      attemptId: newId("att"),
      deliveryId: delivery.id,
      webhookId: delivery.webhookId,
      number,
      startedAt,
      durationMs: result.durationMs,
      responseStatus: result.responseStatus,
      responseBody: printable(result.responseBody),
      error: printable(result.error),
      succeeded: result.succeeded,
      status,
      nextAttemptAt,
      disableReason: outcome.kind === "give-up" && outcome.disable ? outcome.reason : null,
      message: deliveryMessage({
        id: delivery.id,
        accountId: delivery.accountId,
        webhookId: delivery.webhookId,
        eventId: delivery.eventId,
        status,
        attemptCount: number,
        lastAttemptAt: startedAt,
        nextAttemptAt,
        createdAt: delivery.createdAt,
      }),
    });
    if (!recorded) return;

    log.debug(
      { deliveryId: delivery.id, webhookId: delivery.webhookId, number, status, error: result.error },
      "delivery attempt",
    );
    if (outcome.kind === "give-up" && outcome.disable) {
      log.warn({ webhookId: delivery.webhookId, reason: outcome.reason }, "webhook disabled");
    }
    if (outcome.kind === "retry") {
      const next = { deliveryId: delivery.id, webhookId: delivery.webhookId, attempt: number, delayMs: outcome.delayMs };
      await queue.enqueue([next]).catch((error: unknown) => {
        log.warn({ err: error, deliveryId: delivery.id }, "could not enqueue the next try; the sweeper will");
      });
    }
  }

  /**
   * Re-enqueues pending, due, unleased deliveries of active webhooks; `graceMs` skips fresh ones.
   * It walks the active webhooks (index on webhook, status, due time), so the deliveries a
   * disabled webhook keeps waiting are never read. The price: one index probe per active webhook
   * per sweep, and after an outage up to SWEEP_PER_WEBHOOK rows read per backlogged webhook (so
   * a long backlog, e.g. one a slow endpoint's set-aside tries form, leaves room for the others).
   */
  async function sweep(graceMs: number): Promise<number> {
    const rows = await db.$queryRaw<Array<{ id: string; webhookId: string; attemptCount: number }>>`
      SELECT d.id, w.id AS "webhookId", d."attemptCount" FROM "Webhook" AS w
      CROSS JOIN LATERAL (
        SELECT d.id, d."attemptCount", d."nextAttemptAt" FROM "Delivery" AS d
        WHERE d."webhookId" = w.id AND d.status = 'pending'
          AND d."nextAttemptAt" <= now() - ${graceMs}::int * interval '1 millisecond'
          AND (d."leaseUntil" IS NULL OR d."leaseUntil" < now())
        ORDER BY d."nextAttemptAt"
        LIMIT ${SWEEP_PER_WEBHOOK}
      ) AS d
      WHERE w.status = 'active'
      ORDER BY d."nextAttemptAt"
      LIMIT ${SWEEP_BATCH}`;
    if (rows.length > 0) {
      await queue.enqueue(rows.map((r) => ({ deliveryId: r.id, webhookId: r.webhookId, attempt: r.attemptCount })));
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
      await queue.consume(dispatch, options.concurrency);
      await sweep(0);
      scheduleSweep();
    },
    /** Stops taking new work and lets the attempts in flight finish (bounded by the timeout). */
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(sweepTimer);
      await sweeping;
      waiting.clear(); // still pending in the database: the next start's sweep finds them
      waitingKeys.clear();
      await queue.stopConsuming();
      await Promise.all(started);
    },
  };
}

export type DeliveryWorker = ReturnType<typeof createDeliveryWorker>;
