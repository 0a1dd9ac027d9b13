import type { Webhook } from "../generated/prisma/client.ts";
import {
  createWebhook,
  deleteWebhook,
  getWebhook,
  rotateWebhookSecret,
  updateWebhook,
} from "../webhooks/service.ts";
import { accountOf, builder } from "./builder.ts";
import { EventTypeEnum, WebhookStatusEnum } from "./enums.ts";

export const WebhookRef = builder.prismaObject("Webhook", {
  fields: (t) => ({
    id: t.exposeID("id"),
    url: t.exposeString("url"),
    events: t.expose("events", { type: [EventTypeEnum] }),
    status: t.expose("status", { type: WebhookStatusEnum }),
    description: t.exposeString("description", { nullable: true }),
    disabledReason: t.exposeString("disabledReason", { nullable: true }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
  }),
});

const CreateWebhookInput = builder.inputType("CreateWebhookInput", {
  fields: (t) => ({
    url: t.string({ required: true, description: "http or https, at most 2048 characters." }),
    events: t.field({ type: [EventTypeEnum], required: true, description: "At least one." }),
    description: t.string({ description: "At most 500 characters." }),
  }),
});

const UpdateWebhookInput = builder.inputType("UpdateWebhookInput", {
  fields: (t) => ({
    url: t.string(),
    events: t.field({ type: [EventTypeEnum] }),
    description: t.string(),
    status: t.field({ type: WebhookStatusEnum, description: "`active` re-enables a disabled webhook." }),
  }),
});

const WebhookSecretPayload = (name: string) =>
  builder.objectRef<{ webhook: Webhook; secret: string }>(name).implement({
    fields: (t) => ({
      webhook: t.field({ type: WebhookRef, resolve: (p) => p.webhook }),
      secret: t.exposeString("secret", {
        description: "`whsec_…`: signs the webhook's requests. Shown only here.",
      }),
    }),
  });

const CreateWebhookPayload = WebhookSecretPayload("CreateWebhookPayload");
const RotateWebhookSecretPayload = WebhookSecretPayload("RotateWebhookSecretPayload");
const DeleteWebhookPayload = builder.objectRef<{ id: string }>("DeleteWebhookPayload").implement({
  fields: (t) => ({ id: t.exposeID("id") }),
});

builder.queryFields((t) => ({
  webhook: t.prismaField({
    type: "Webhook",
    nullable: true,
    authScopes: { account: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      ctx.app.db.webhook.findFirst({ ...query, where: { id: args.id.toString(), accountId: accountOf(ctx) } }),
  }),
  webhooks: t.prismaConnection({
    type: "Webhook",
    cursor: "id",
    defaultSize: 20,
    maxSize: 100,
    authScopes: { account: true },
    args: { status: t.arg({ type: WebhookStatusEnum }) },
    resolve: (query, _root, args, ctx) =>
      ctx.app.db.webhook.findMany({
        ...query,
        where: { accountId: accountOf(ctx), ...(args.status ? { status: args.status } : {}) },
        orderBy: { id: "desc" },
      }),
  }, { name: "WebhookConnection" }, { name: "WebhookEdge" }),
}));

builder.mutationFields((t) => ({
  createWebhook: t.field({
    type: CreateWebhookPayload,
    authScopes: { account: true },
    args: { input: t.arg({ type: CreateWebhookInput, required: true }) },
    resolve: (_root, { input }, ctx) => createWebhook(ctx.app, accountOf(ctx), input),
  }),
  updateWebhook: t.field({
    type: WebhookRef,
    authScopes: { account: true },
    args: { id: t.arg.id({ required: true }), input: t.arg({ type: UpdateWebhookInput, required: true }) },
    resolve: (_root, { id, input }, ctx) => updateWebhook(ctx.app, accountOf(ctx), id.toString(), input),
  }),
  deleteWebhook: t.field({
    type: DeleteWebhookPayload,
    authScopes: { account: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, { id }, ctx) => {
      await deleteWebhook(ctx.app, accountOf(ctx), id.toString());
      return { id: id.toString() };
    },
  }),
  rotateWebhookSecret: t.field({
    type: RotateWebhookSecretPayload,
    authScopes: { account: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => rotateWebhookSecret(ctx.app, accountOf(ctx), id.toString()),
  }),
}));
