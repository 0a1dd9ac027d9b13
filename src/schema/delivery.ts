import type { DeliveryBatchMessage, DeliveryMessage } from "../delivery/messages.ts";
import { retryDelivery } from "../delivery/service.ts";
import { topics } from "../pubsub/pubsub.ts";
import { accountOf, builder } from "./builder.ts";
import { DeliveryStatusEnum, EventTypeEnum } from "./enums.ts";
import { liveTopic } from "./live.ts";

export const DeliveryAttemptRef = builder.prismaObject("DeliveryAttempt", {
  fields: (t) => ({
    number: t.exposeInt("number", { description: "1 = the first try." }),
    startedAt: t.expose("startedAt", { type: "DateTime" }),
    durationMs: t.exposeInt("durationMs"),
    responseStatus: t.exposeInt("responseStatus", {
      nullable: true,
      description: "null when no response arrived (timeout, refused, blocked).",
    }),
    responseBody: t.exposeString("responseBody", { nullable: true, description: "The first 4 KiB at most." }),
    error: t.exposeString("error", { nullable: true }),
    succeeded: t.exposeBoolean("succeeded"),
  }),
});

export const DeliveryRef = builder.prismaObject("Delivery", {
  fields: (t) => ({
    id: t.exposeID("id"),
    webhook: t.relation("webhook"),
    event: t.relation("event"),
    status: t.expose("status", { type: DeliveryStatusEnum }),
    attemptCount: t.exposeInt("attemptCount"),
    lastAttemptAt: t.expose("lastAttemptAt", { type: "DateTime", nullable: true }),
    nextAttemptAt: t.expose("nextAttemptAt", {
      type: "DateTime",
      nullable: true,
      description: "When the next try is due; null once the delivery has succeeded or failed.",
    }),
    attempts: t.relation("attempts", { query: { orderBy: { number: "desc" } } }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

export const DeliveryConnection = builder.connectionObject(
  { type: DeliveryRef, name: "DeliveryConnection" },
  { name: "DeliveryEdge" },
);

builder.prismaObjectField("Webhook", "deliveries", (t) =>
  t.prismaConnection(
    {
      type: "Delivery",
      cursor: "id",
      defaultSize: 20,
      maxSize: 100,
      description: "This webhook's delivery log, newest first.",
      args: { status: t.arg({ type: DeliveryStatusEnum }) },
      // a query of its own (not a nested relation load) so the page is a LIMIT on the index
      resolve: (query, webhook, args, ctx) =>
        ctx.app.db.delivery.findMany({
          ...query,
          where: { webhookId: webhook.id, accountId: webhook.accountId, ...(args.status ? { status: args.status } : {}) },
          orderBy: { id: "desc" },
        }),
    },
    DeliveryConnection,
  ),
);

builder.queryFields((t) => ({
  delivery: t.prismaField({
    type: "Delivery",
    nullable: true,
    authScopes: { account: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      ctx.app.db.delivery.findFirst({ ...query, where: { id: args.id.toString(), accountId: accountOf(ctx) } }),
  }),
  deliveries: t.prismaConnection(
    {
      type: "Delivery",
      cursor: "id",
      defaultSize: 20,
      maxSize: 100,
      description: "The delivery log, newest first.",
      authScopes: { account: true },
      args: {
        webhookId: t.arg.id(),
        eventId: t.arg.id(),
        status: t.arg({ type: DeliveryStatusEnum }),
        eventType: t.arg({ type: EventTypeEnum }),
      },
      resolve: (query, _root, args, ctx) =>
        ctx.app.db.delivery.findMany({
          ...query,
          where: {
            accountId: accountOf(ctx),
            ...(args.webhookId ? { webhookId: args.webhookId.toString() } : {}),
            ...(args.eventId ? { eventId: args.eventId.toString() } : {}),
            ...(args.status ? { status: args.status } : {}),
            ...(args.eventType ? { eventType: args.eventType } : {}),
          },
          orderBy: { id: "desc" },
        }),
    },
    DeliveryConnection,
  ),
}));

builder.mutationField("retryDelivery", (t) =>
  t.prismaField({
    type: "Delivery",
    description: "Sends a failed delivery again (one more attempt, sooner if its webhook is active).",
    authScopes: { account: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) => retryDelivery(ctx.app, accountOf(ctx), args.id.toString(), query),
  }),
);

builder.subscriptionField("deliveryUpdated", (t) =>
  t.field({
    type: DeliveryRef,
    description: "Every change of a delivery's state in the viewer's account (optionally one webhook's).",
    authScopes: { account: true },
    args: { webhookId: t.arg.id() },
    subscribe: async function* (_root, args, ctx) {
      const webhookId = args.webhookId?.toString();
      for await (const batch of liveTopic<DeliveryBatchMessage | DeliveryMessage>(ctx, topics.deliveries(accountOf(ctx)))) {
        // a worker of the previous release publishes one delivery per message
        const messages = "deliveries" in batch && Array.isArray(batch.deliveries) ? batch.deliveries : [batch as DeliveryMessage];
        for (const message of messages) {
          if (!webhookId || message.webhookId === webhookId) yield message;
        }
      }
    },
    resolve: (message: DeliveryMessage) => ({
      id: message.id,
      accountId: message.accountId,
      webhookId: message.webhookId,
      eventId: message.eventId,
      eventType: undefined as never,
      status: message.status,
      attemptCount: message.attemptCount,
      lastAttemptAt: message.lastAttemptAt ? new Date(message.lastAttemptAt) : null,
      nextAttemptAt: message.nextAttemptAt ? new Date(message.nextAttemptAt) : null,
      leaseUntil: null,
      createdAt: new Date(message.createdAt),
      updatedAt: new Date(),
    }),
  }),
);
