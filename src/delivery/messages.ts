/** One delivery's new state, as the deliveryUpdated subscription sees it. */
export interface DeliveryMessage {
  id: string;
  accountId: string;
  webhookId: string;
  eventId: string;
  status: "pending" | "succeeded" | "failed";
  attemptCount: number;
  lastAttemptAt: string | null;
  nextAttemptAt: string | null;
  createdAt: string;
}

/**
 * The plain-JSON message published on an account's delivery topic: the state changes of one
 * batch of attempts (one Redis message per account and batch, not one per delivery).
 */
export interface DeliveryBatchMessage {
  deliveries: DeliveryMessage[];
}

export function deliveryMessage(d: {
  id: string;
  accountId: string;
  webhookId: string;
  eventId: string;
  status: DeliveryMessage["status"];
  attemptCount: number;
  lastAttemptAt: Date | null;
  nextAttemptAt: Date | null;
  createdAt: Date;
}): DeliveryMessage {
  return {
    id: d.id,
    accountId: d.accountId,
    webhookId: d.webhookId,
    eventId: d.eventId,
    status: d.status,
    attemptCount: d.attemptCount,
    lastAttemptAt: d.lastAttemptAt?.toISOString() ?? null,
    nextAttemptAt: d.nextAttemptAt?.toISOString() ?? null,
    createdAt: d.createdAt.toISOString(),
  };
}

/** The small plain-JSON message published on an account's event topic. */
export interface EventMessage {
  id: string;
  accountId: string;
  type: string;
  timestamp: number;
  data: unknown;
  createdAt: string;
}
