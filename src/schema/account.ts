import { announceRevocation, createAccount, createApiKey, revokeApiKey } from "../auth/service.ts";
import type { Account, ApiKey } from "../generated/prisma/client.ts";
import { notFound } from "../lib/errors.ts";
import { accountOf, builder } from "./builder.ts";

export const AccountRef = builder.prismaObject("Account", {
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name"),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

export const ApiKeyRef = builder.prismaObject("ApiKey", {
  description: "An API key. The key itself is shown only once, when it is created.",
  fields: (t) => ({
    id: t.exposeID("id"),
    name: t.exposeString("name", { nullable: true }),
    prefix: t.exposeString("prefix", { description: "The first characters of the key, safe to show." }),
    accountId: t.exposeID("accountId", { nullable: true }),
    lastUsedAt: t.expose("lastUsedAt", { type: "DateTime", nullable: true }),
    revokedAt: t.expose("revokedAt", { type: "DateTime", nullable: true }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
  }),
});

const CreateAccountPayload = builder
  .objectRef<{ account: Account; apiKey: string; key: ApiKey }>("CreateAccountPayload")
  .implement({
    fields: (t) => ({
      account: t.field({ type: AccountRef, resolve: (p) => p.account }),
      apiKey: t.exposeString("apiKey", { description: "The account's first API key; shown only this once." }),
      key: t.field({ type: ApiKeyRef, resolve: (p) => p.key }),
    }),
  });

const CreateApiKeyPayload = builder.objectRef<{ apiKey: string; key: ApiKey }>("CreateApiKeyPayload").implement({
  fields: (t) => ({
    apiKey: t.exposeString("apiKey", { description: "The new key; shown only this once." }),
    key: t.field({ type: ApiKeyRef, resolve: (p) => p.key }),
  }),
});

builder.queryField("viewer", (t) =>
  t.prismaField({
    type: "Account",
    authScopes: { account: true },
    resolve: async (query, _root, _args, ctx) => {
      const id = accountOf(ctx);
      const account = await ctx.app.db.account.findUnique({ ...query, where: { id } });
      if (!account) throw notFound("account", id);
      return account;
    },
  }),
);

builder.mutationFields((t) => ({
  createAccount: t.field({
    type: CreateAccountPayload,
    description: "Admin only: a new account and its first API key.",
    authScopes: { admin: true },
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, args, ctx) => createAccount(ctx.app.db, args.name),
  }),
  createApiKey: t.field({
    type: CreateApiKeyPayload,
    description: "A new API key for the viewer's account (the admin key names the account).",
    authScopes: { account: true, admin: true },
    args: { accountId: t.arg.id(), name: t.arg.string() },
    resolve: (_root, args, ctx) =>
      createApiKey(ctx.app.db, ctx.viewer, { accountId: args.accountId?.toString(), name: args.name }),
  }),
  revokeApiKey: t.field({
    type: ApiKeyRef,
    description: "Revokes a key of the viewer's account; it is refused from then on.",
    authScopes: { account: true, admin: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const key = await revokeApiKey(ctx.app.db, ctx.viewer, args.id.toString());
      await announceRevocation(ctx.app, key.id);
      return key;
    },
  }),
}));
