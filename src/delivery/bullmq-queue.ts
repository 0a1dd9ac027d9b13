import { createHash } from "node:crypto";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { createBatcher } from "../lib/batcher.ts";
import { jobKey, type DeliveryJob, type DeliveryQueue } from "./queue.ts";

export interface BullmqQueueOptions {
  redisUrl: string;
  /** Redis key prefix, so several deployments (or test runs) can share one Redis. */
  prefix: string;
  /** A job held longer than this by a worker that stopped answering is handed out again. */
  lockDurationMs: number;
}

const QUEUE_NAME = "deliveries";
/** Tries enqueued together with the same delay travel as one BullMQ job of at most this many. */
const TRIES_PER_JOB = 100;

type JobData = { tries: Array<Pick<DeliveryJob, "deliveryId" | "attempt" | "webhookId">> };

/**
 * A job's id names exactly its tries: one try is its own key; a group is its first key, its size
 * and a digest of every key, so two different groups never share an id (BullMQ would drop the
 * second as a duplicate) and the same group enqueued twice is added once.
 */
function groupKey(tries: DeliveryJob[]): string {
  if (tries.length === 1) return jobKey(tries[0]!);
  const digest = createHash("sha1").update(tries.map(jobKey).join(",")).digest("base64url");
  return `${jobKey(tries[0]!)}-x${tries.length}-${digest}`;
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * BullMQ on Redis: jobs survive the process, and any number of worker processes share them.
 * Tries enqueued close together (the deliveries of the events one publish batch stored) travel
 * as one job, so BullMQ's per-job cost is paid once per batch rather than once per delivery. A
 * job's id is made of its tries' keys (see groupKey), so enqueuing the same tries twice adds them
 * once; a try that runs twice anyway is harmless, because a worker must claim the delivery in the
 * database before it sends anything.
 */
export function createBullmqQueue(options: BullmqQueueOptions): DeliveryQueue {
  const connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null, enableAutoPipelining: true });
  const queue = new Queue<JobData>(QUEUE_NAME, { connection, prefix: options.prefix });
  let worker: Worker<JobData> | undefined;
  let workerConnection: Redis | undefined;

  async function add(jobs: DeliveryJob[]): Promise<void> {
    const byDelay = new Map<number, DeliveryJob[]>();
    for (const job of jobs) {
      const delay = Math.max(0, Math.ceil(job.delayMs ?? 0));
      const group = byDelay.get(delay);
      if (group) group.push(job);
      else byDelay.set(delay, [job]);
    }
    const bulk = [...byDelay].flatMap(([delay, group]) =>
      chunks(group, TRIES_PER_JOB).map((tries) => ({
        name: "deliver",
        data: {
          tries: tries.map((t) => ({
            deliveryId: t.deliveryId,
            attempt: t.attempt,
            ...(t.webhookId ? { webhookId: t.webhookId } : {}),
          })),
        },
        opts: {
          jobId: groupKey(tries),
          ...(delay > 0 ? { delay } : {}),
          removeOnComplete: true,
          // a job that failed for good must not keep its id: the sweeper re-adds the same id
          removeOnFail: true,
          attempts: 5,
          backoff: { type: "exponential", delay: 1000 },
        },
      })),
    );
    await queue.addBulk(bulk);
  }
  // enqueue calls made while an add is in flight share the next one
  const addTogether = createBatcher<DeliveryJob[], void>(
    async (lists) => {
      await add(lists.flat());
      return lists.map(() => undefined);
    },
    { maxSize: 200, maxInFlight: 1 },
  );

  return {
    async enqueue(jobs) {
      if (jobs.length > 0) await addTogether(jobs);
    },
    async consume(handler, concurrency) {
      workerConnection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
      worker = new Worker<JobData>(
        QUEUE_NAME,
        async (job) => {
          await Promise.all(job.data.tries.map((t) => handler(t)));
        },
        {
          connection: workerConnection,
          prefix: options.prefix,
          concurrency,
          lockDuration: options.lockDurationMs,
          stalledInterval: options.lockDurationMs,
          maxStalledCount: 10,
        },
      );
      worker.on("error", () => {});
      await worker.waitUntilReady();
    },
    async stopConsuming() {
      await worker?.close();
    },
    async close() {
      await worker?.close();
      await queue.close();
      await connection.quit().catch(() => {});
      await workerConnection?.quit().catch(() => {});
    },
  };
}
