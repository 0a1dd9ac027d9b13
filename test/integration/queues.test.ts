import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createBullmqQueue } from "../../src/delivery/bullmq-queue.ts";
import { createMemoryQueue } from "../../src/delivery/memory-queue.ts";
import { jobKey, type DeliveryJob, type DeliveryQueue } from "../../src/delivery/queue.ts";
import { until } from "../helpers/verify.ts";

const { redis } = inject("services");

const queues: Array<{ name: string; skip?: string; make: () => { queue: DeliveryQueue; prefix?: string } }> = [
  { name: "in-process", make: () => ({ queue: createMemoryQueue() }) },
  {
    name: "BullMQ",
    ...(redis.available ? {} : { skip: `Redis unavailable: ${redis.reason}` }),
    make: () => {
      const prefix = `test-q-${randomBytes(6).toString("hex")}`;
      return { queue: createBullmqQueue({ redisUrl: redis.url, prefix, lockDurationMs: 5_000 }), prefix };
    },
  },
];

for (const { name, skip, make } of queues) {
  describe.skipIf(Boolean(skip))(`delivery queue: ${name}${skip ? ` (skipped: ${skip})` : ""}`, () => {
    let opened: { queue: DeliveryQueue; prefix?: string } | undefined;

    afterEach(async () => {
      await opened?.queue.close();
      if (opened?.prefix) {
        const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 2 });
        await client.connect();
        const keys = await client.keys(`${opened.prefix}:*`);
        if (keys.length > 0) await client.del(...keys);
        await client.quit();
      }
      opened = undefined;
    });

    it("runs every try of groups enqueued apart, even two that share their first and last try", async () => {
      opened = make();
      const { queue } = opened;
      const tries = (ids: string[]): DeliveryJob[] => ids.map((deliveryId) => ({ deliveryId, attempt: 0 }));
      // enqueued before anyone consumes, so the first group is still waiting when the second arrives
      await queue.enqueue(tries(["dlv_a", "dlv_b", "dlv_z"]));
      await queue.enqueue(tries(["dlv_a", "dlv_c", "dlv_z"]));
      await queue.enqueue(tries(["dlv_d"]));
      const handled = new Set<string>();
      await queue.consume(async (job) => void handled.add(jobKey(job)), 10);
      const expected = ["dlv_a-0", "dlv_b-0", "dlv_c-0", "dlv_d-0", "dlv_z-0"];
      await until(() => expected.every((key) => handled.has(key)), {
        timeoutMs: 10_000,
        what: "every try to run",
        describe: () => [...handled].sort(),
      });
      expect([...handled].sort()).toEqual(expected);
    });
  });
}
