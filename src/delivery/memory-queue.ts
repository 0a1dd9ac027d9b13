import { jobKey, type DeliveryHandler, type DeliveryJob, type DeliveryQueue } from "./queue.ts";

/**
 * The embedded default: jobs live in this process's memory and die with it (the sweeper
 * re-enqueues what was pending at the next start).
 */
export function createMemoryQueue(): DeliveryQueue {
  const known = new Set<string>();
  const timers = new Map<string, NodeJS.Timeout>();
  const ready: DeliveryJob[] = [];
  let handler: DeliveryHandler | undefined;
  let concurrency = 1;
  let running = 0;
  let stopped = false;
  let idle: (() => void) | undefined;

  function pump(): void {
    while (handler && !stopped && running < concurrency && ready.length > 0) {
      const job = ready.shift()!;
      known.delete(jobKey(job));
      running += 1;
      handler(job)
        .catch(() => {})
        .finally(() => {
          running -= 1;
          if (running === 0) idle?.();
          pump();
        });
    }
  }

  function makeReady(job: DeliveryJob): void {
    ready.push(job);
    pump();
  }

  return {
    async enqueue(jobs) {
      for (const job of jobs) {
        const key = jobKey(job);
        if (known.has(key)) continue;
        known.add(key);
        if (job.delayMs && job.delayMs > 0) {
          const timer = setTimeout(() => {
            timers.delete(key);
            makeReady(job);
          }, job.delayMs);
          timer.unref();
          timers.set(key, timer);
        } else {
          makeReady(job);
        }
      }
    },
    async consume(next, max) {
      handler = next;
      concurrency = max;
      stopped = false;
      pump();
    },
    async stopConsuming() {
      stopped = true;
      if (running > 0) await new Promise<void>((resolve) => (idle = resolve));
    },
    async close() {
      stopped = true;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      ready.length = 0;
      known.clear();
    },
  };
}
