import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { Pool } from "undici";
import { onCleanup } from "../lib/cleanup.ts";
import type { Ctx } from "../lib/context.ts";
import { deleteRedisKeys, REDIS_URL, RUN_ID } from "../lib/service.ts";
import { BENCH_KEY, BENCH_SECRET, signedHeaders } from "../lib/signing.ts";
import { nowMs } from "../lib/stats.ts";

/**
 * The do-it-yourself baseline: a BullMQ queue and worker (concurrency 100) in this process,
 * each job signed and POSTed with undici; no database, no log. Jobs are added 1,000 at a time.
 */
export async function diyBullmq(ctx: Ctx): Promise<void> {
  const { receiver, opts } = ctx;
  const prefix = `bench-${RUN_ID}-diy`;
  onCleanup(`Redis keys ${prefix}*`, () => deleteRedisKeys(prefix).then(() => undefined));
  const tag = "diy-bullmq";
  const target = new URL(receiver.url(tag, 0));
  const http = new Pool(target.origin, { connections: 64, pipelining: 1, keepAliveTimeout: 30_000 });
  const producer = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const consumer = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue<{ n: number; sentAt: number }>("diy", { connection: producer, prefix });
  let failures = 0;
  const worker = new Worker<{ n: number; sentAt: number }>(
    "diy",
    async (job) => {
      const { n, sentAt } = job.data;
      const body = JSON.stringify({
        event: "agent_created",
        timestamp: Math.floor(sentAt / 1000),
        data: { agent_id: `agent_diy_${n}`, name: "Benchmark assistant with a name of ordinary length", created_by: `user_${n % 1000}`, sent_at: sentAt },
      });
      const res = await http.request({
        path: target.pathname,
        method: "POST",
        headers: signedHeaders(BENCH_SECRET, BENCH_KEY, `msg_diy_${n}`, body),
        body,
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      await res.body.dump();
      if (res.statusCode !== 200) {
        failures += 1;
        throw new Error(`HTTP ${res.statusCode}`);
      }
    },
    { connection: consumer, prefix, concurrency: 100, autorun: false },
  );
  worker.on("error", () => {});
  try {
    await queue.waitUntilReady();
    void worker.run();
    await worker.waitUntilReady();
    const total = opts.diyJobs;
    const started = nowMs();
    for (let i = 0; i < total; i += 1000) {
      const at = nowMs();
      await queue.addBulk(
        Array.from({ length: Math.min(1000, total - i) }, (_, k) => ({
          name: "deliver",
          data: { n: i + k, sentAt: at },
          opts: { removeOnComplete: true, removeOnFail: { count: 1000 }, attempts: 3 },
        })),
      );
    }
    const addedMs = nowMs() - started;
    const { stats, reason } = await receiver.waitForDeliveries(tag, total, {
      stallMs: opts.stallSeconds * 1000,
      maxMs: 120_000,
    });
    const seconds = ((stats.last_delivered_at ?? nowMs()) - started) / 1000;
    ctx.emit({
      scenario: "diy-bullmq",
      deliveries_per_s: stats.delivered / seconds,
      p50_ms: stats.latency_p50_ms ?? null,
      p99_ms: stats.latency_p99_ms ?? null,
      jobs: total,
      delivered: stats.delivered,
      missing: total - stats.delivered,
      duplicates: stats.duplicates,
      failed_attempts: failures,
      add_jobs_per_s: total / (addedMs / 1000),
      duration_s: seconds,
      worker_concurrency: 100,
      complete: reason === "complete",
    });
  } finally {
    await worker.close().catch(() => {});
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close().catch(() => {});
    producer.disconnect();
    consumer.disconnect();
    await http.close();
    await receiver.forget(tag);
  }
}
