import type { Db } from "../db/client.ts";
import type { Delivery } from "../generated/prisma/client.ts";
import { badInput, notFound } from "../lib/errors.ts";
import type { Logger } from "../lib/logger.ts";
import { topics, type PubSub } from "../pubsub/pubsub.ts";
import { deliveryMessage, type DeliveryBatchMessage } from "./messages.ts";
import type { DeliveryQueue } from "./queue.ts";

export interface DeliveryServiceDeps {
  db: Db;
  queue: DeliveryQueue;
  pubsub: PubSub;
  log: Logger;
}

async function announce(deps: DeliveryServiceDeps, delivery: Delivery): Promise<void> {
  const message: DeliveryBatchMessage = { deliveries: [deliveryMessage(delivery)] };
  await deps.pubsub.publish(topics.deliveries(delivery.accountId), message).catch((error: unknown) => {
    deps.log.warn({ err: error }, "could not publish a delivery update");
  });
}

/** A failed delivery goes back to pending, due now: one more attempt once its webhook is active. */
export async function retryDelivery<Q extends object>(
  deps: DeliveryServiceDeps,
  accountId: string,
  id: string,
  query: Q = {} as Q,
): Promise<Delivery> {
  const current = await deps.db.delivery.findFirst({ where: { id, accountId } });
  if (!current) throw notFound("delivery", id);
  if (current.status !== "failed") {
    throw badInput(`delivery ${id} is ${current.status}; only a failed delivery can be retried`, "id");
  }
  const { count } = await deps.db.delivery.updateMany({
    where: { id, accountId, status: "failed" },
    data: { status: "pending", nextAttemptAt: new Date(), leaseUntil: null },
  });
  if (count === 0) throw badInput(`delivery ${id} is no longer failed`, "id");
  const delivery = await deps.db.delivery.findUniqueOrThrow({ ...query, where: { id } });
  await Promise.all([announce(deps, delivery), deps.queue.enqueue([{ deliveryId: id, webhookId: delivery.webhookId, attempt: delivery.attemptCount }])]);
  return delivery;
}

/** After a webhook is active again, its waiting deliveries go out (each when it is due). */
export async function resumeWebhookDeliveries(deps: DeliveryServiceDeps, webhookId: string): Promise<number> {
  const pending = await deps.db.delivery.findMany({
    where: { webhookId, status: "pending" },
    select: { id: true, attemptCount: true, nextAttemptAt: true },
    orderBy: { id: "asc" },
  });
  const now = Date.now();
  await deps.queue.enqueue(
    pending.map((d) => ({
      deliveryId: d.id,
      webhookId,
      attempt: d.attemptCount,
      delayMs: Math.max(0, (d.nextAttemptAt?.getTime() ?? now) - now),
    })),
  );
  return pending.length;
}
