import type { EventMessage } from "../delivery/messages.ts";
import { publishEvent } from "../events/publish.ts";
import { topics } from "../pubsub/pubsub.ts";
import { accountOf, builder } from "./builder.ts";
import { EventTypeEnum } from "./enums.ts";
import { liveTopic } from "./live.ts";

export const EventRef = builder.prismaObject("Event", {
  fields: (t) => ({
    id: t.exposeID("id"),
    type: t.expose("type", { type: EventTypeEnum }),
    timestamp: t.exposeInt("timestamp", { description: "Unix seconds, as in the webhook payload." }),
    data: t.expose("data", { type: "JSON" }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

const PublishEventInput = builder.inputType("PublishEventInput", {
  fields: (t) => ({
    type: t.field({ type: EventTypeEnum, required: true }),
    data: t.field({ type: "JSON", required: true, description: "A JSON object of at most 256 KiB." }),
    idempotencyKey: t.string({ description: "The same key within 24 hours returns the first event." }),
    accountId: t.id({ description: "Admin only: the account the event belongs to." }),
  }),
});

builder.queryFields((t) => ({
  event: t.prismaField({
    type: "Event",
    nullable: true,
    authScopes: { account: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      ctx.app.db.event.findFirst({ ...query, where: { id: args.id.toString(), accountId: accountOf(ctx) } }),
  }),
  events: t.prismaConnection(
    {
      type: "Event",
      cursor: "id",
      defaultSize: 20,
      maxSize: 100,
      authScopes: { account: true },
      args: { type: t.arg({ type: EventTypeEnum }) },
      resolve: (query, _root, args, ctx) =>
        ctx.app.db.event.findMany({
          ...query,
          where: { accountId: accountOf(ctx), ...(args.type ? { type: args.type } : {}) },
          orderBy: { id: "desc" },
        }),
    },
    { name: "EventConnection" },
    { name: "EventEdge" },
  ),
}));

builder.mutationField("publishEvent", (t) =>
  t.field({
    type: EventRef,
    description:
      "Stores the event and one delivery per active webhook subscribed to its type, then streams it to subscribers.",
    authScopes: { account: true, admin: true },
    args: { input: t.arg({ type: PublishEventInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      publishEvent(ctx.app, ctx.viewer, {
        type: input.type,
        data: input.data,
        idempotencyKey: input.idempotencyKey,
        accountId: input.accountId?.toString(),
      }),
  }),
);

builder.subscriptionField("events", (t) =>
  t.field({
    type: EventRef,
    description: "Every event of the viewer's account from now on (optionally only these types).",
    authScopes: { account: true },
    args: { types: t.arg({ type: [EventTypeEnum] }) },
    subscribe: async function* (_root, args, ctx) {
      const wanted = args.types && args.types.length > 0 ? new Set<string>(args.types) : undefined;
      for await (const message of liveTopic<EventMessage>(ctx, topics.events(accountOf(ctx)))) {
        if (!wanted || wanted.has(message.type)) yield message;
      }
    },
    resolve: (message: EventMessage) => ({
      id: message.id,
      accountId: message.accountId,
      type: message.type as never,
      timestamp: message.timestamp,
      data: message.data as never,
      idempotencyKey: null,
      createdAt: new Date(message.createdAt),
    }),
  }),
);
