import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { jobKey, type DeliveryJob, type DeliveryQueue } from "./queue.ts";

export interface BullmqQueueOptions {
  redisUrl: string;
  /** Redis key prefix, so several deployments (or test runs) can share one Redis. */
  prefix: string;
  /** A job held longer than this by a worker that stopped answering is handed out again. */
  lockDurationMs: number;
}

const QUEUE_NAME = "deliveries";

/**
 * BullMQ on Redis: jobs survive the process, and any number of worker processes share them.
 * The job id is the job key, so enqueuing one try twice adds it once.
 */
export function createBullmqQueue(options: BullmqQueueOptions): DeliveryQueue {
  const connection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue<Omit<DeliveryJob, "delayMs">>(QUEUE_NAME, { connection, prefix: options.prefix });
  let worker: Worker<Omit<DeliveryJob, "delayMs">> | undefined;
  let workerConnection: Redis | undefined;

  return {
    async enqueue(jobs) {
      if (jobs.length === 0) return;
      await queue.addBulk(
        jobs.map((job) => ({
          name: "deliver",
          data: { deliveryId: job.deliveryId, attempt: job.attempt },
          opts: {
            jobId: jobKey(job),
            ...(job.delayMs && job.delayMs > 0 ? { delay: Math.ceil(job.delayMs) } : {}),
            removeOnComplete: true,
            removeOnFail: { count: 1000 },
            attempts: 5,
            backoff: { type: "exponential", delay: 1000 },
          },
        })),
      );
    },
    async consume(handler, concurrency) {
      workerConnection = new Redis(options.redisUrl, { maxRetriesPerRequest: null });
      worker = new Worker(QUEUE_NAME, (job) => handler(job.data), {
        connection: workerConnection,
        prefix: options.prefix,
        concurrency,
        lockDuration: options.lockDurationMs,
        stalledInterval: options.lockDurationMs,
        maxStalledCount: 10,
      });
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
