import type { Db } from "../db/client.ts";
import type { Webhook } from "../generated/prisma/client.ts";
import { badInput, notFound } from "../lib/errors.ts";
import { newId } from "../lib/ids.ts";
import { generateWebhookSecret, PREVIOUS_SECRET_TTL_MS } from "./secrets.ts";
import {
  validateDescription,
  validateEvents,
  validateWebhookUrl,
  type DestinationGuard,
} from "./validation.ts";

export interface WebhookDeps {
  db: Db;
  guard: DestinationGuard;
  /** Called after a webhook is set active again, so its waiting deliveries go out. */
  onWebhookReactivated?: (webhook: Webhook) => void | Promise<void>;
}

export interface CreateWebhookInput {
  url: string;
  events: unknown;
  description?: string | null;
}

export interface UpdateWebhookInput {
  url?: string | null;
  events?: unknown;
  description?: string | null;
  status?: "active" | "disabled" | null;
}

/** Reads one webhook of the account; another account's webhook is NOT_FOUND. */
export async function getWebhook(deps: Pick<WebhookDeps, "db">, accountId: string, id: string): Promise<Webhook> {
  const webhook = await deps.db.webhook.findFirst({ where: { id, accountId } });
  if (!webhook) throw notFound("webhook", id);
  return webhook;
}

export async function createWebhook(
  deps: WebhookDeps,
  accountId: string,
  input: CreateWebhookInput,
): Promise<{ webhook: Webhook; secret: string }> {
  const url = await validateWebhookUrl(input.url, deps.guard);
  const events = validateEvents(input.events);
  const description = validateDescription(input.description);
  const secret = generateWebhookSecret();
  const webhook = await deps.db.webhook.create({
    data: { id: newId("wh"), accountId, url, events, description, secret },
  });
  return { webhook, secret };
}

export async function updateWebhook(
  deps: WebhookDeps,
  accountId: string,
  id: string,
  input: UpdateWebhookInput,
): Promise<Webhook> {
  const current = await getWebhook(deps, accountId, id);
  const data: Partial<Pick<Webhook, "url" | "events" | "description" | "status" | "disabledReason">> = {};
  if (input.url !== undefined) {
    if (input.url === null) throw badInput("url cannot be null", "url");
    data.url = await validateWebhookUrl(input.url, deps.guard);
  }
  if (input.events !== undefined) data.events = validateEvents(input.events);
  if (input.description !== undefined) data.description = validateDescription(input.description);
  if (input.status !== undefined && input.status !== null) {
    if (input.status !== "active" && input.status !== "disabled") {
      throw badInput("status must be active or disabled", "status");
    }
    data.status = input.status;
    if (input.status === "active") data.disabledReason = null;
    else if (current.status === "active") data.disabledReason = "disabled through the API";
  }
  if (Object.keys(data).length === 0) return current;
  const webhook = await deps.db.webhook.update({ where: { id: current.id, accountId }, data });
  if (current.status === "disabled" && webhook.status === "active") await deps.onWebhookReactivated?.(webhook);
  return webhook;
}

export async function deleteWebhook(deps: Pick<WebhookDeps, "db">, accountId: string, id: string): Promise<void> {
  const { count } = await deps.db.webhook.deleteMany({ where: { id, accountId } });
  if (count === 0) throw notFound("webhook", id);
}

/**
 * A new secret signs from now on; the previous one keeps signing beside it for 24 hours, so
 * receivers can switch without dropping a request.
 */
export async function rotateWebhookSecret(
  deps: Pick<WebhookDeps, "db">,
  accountId: string,
  id: string,
  now = new Date(),
): Promise<{ webhook: Webhook; secret: string }> {
  const current = await getWebhook(deps, accountId, id);
  const secret = generateWebhookSecret();
  const webhook = await deps.db.webhook.update({
    where: { id: current.id, accountId },
    data: {
      secret,
      previousSecret: current.secret,
      previousSecretExpiresAt: new Date(now.getTime() + PREVIOUS_SECRET_TTL_MS),
    },
  });
  return { webhook, secret };
}

/** One page of the account's webhooks, newest first, for the REST API (`?limit=&cursor=`). */
export async function listWebhooks(
  deps: Pick<WebhookDeps, "db">,
  accountId: string,
  options: { limit: number; cursor?: string | undefined; status?: "active" | "disabled" | undefined },
): Promise<{ data: Webhook[]; nextCursor: string | null }> {
  const rows = await deps.db.webhook.findMany({
    where: {
      accountId,
      ...(options.status ? { status: options.status } : {}),
      ...(options.cursor ? { id: { lt: options.cursor } } : {}),
    },
    orderBy: { id: "desc" },
    take: options.limit + 1,
  });
  const data = rows.slice(0, options.limit);
  return { data, nextCursor: rows.length > options.limit ? data[data.length - 1]!.id : null };
}
