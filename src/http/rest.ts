import type { IncomingMessage, ServerResponse } from "node:http";
import type { Viewer } from "../auth/viewer.ts";
import { ACT_AS_HEADER, requireAccount } from "../auth/viewer.ts";
import type { App } from "../context.ts";
import { publishEvent } from "../events/publish.ts";
import type { Delivery, Webhook } from "../generated/prisma/client.ts";
import { appError, badInput, ERROR_STATUS, errorCode, notFound } from "../lib/errors.ts";
import {
  createWebhook,
  deleteWebhook,
  getWebhook,
  listWebhooks,
  updateWebhook,
} from "../webhooks/service.ts";
import { mediaType, readBody } from "./body.ts";
import { reportUnexpectedError } from "./report.ts";

const DEFAULT_LIMIT = 20;
const MAX_LIMIT = 100;

interface Request {
  req: IncomingMessage;
  url: URL;
  viewer: Viewer;
}

type Answer = { status: number; body?: unknown; headers?: Record<string, string> };

function send(res: ServerResponse, answer: Answer): void {
  const headers: Record<string, string> = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    ...answer.headers,
  };
  if (answer.body === undefined) {
    res.writeHead(answer.status, headers).end();
    return;
  }
  const text = JSON.stringify(answer.body);
  res
    .writeHead(answer.status, {
      ...headers,
      "content-type": "application/json; charset=utf-8",
      "content-length": String(Buffer.byteLength(text)),
    })
    .end(text);
}

/** The REST shape of a webhook (never its secret). */
export function webhookJson(w: Webhook) {
  return {
    id: w.id,
    url: w.url,
    events: w.events,
    status: w.status,
    description: w.description,
    created_at: w.createdAt.toISOString(),
    updated_at: w.updatedAt.toISOString(),
  };
}

/** The REST shape of a delivery log entry; `last_attempt` is unix seconds as a string, as documented. */
export function deliveryJson(d: Delivery) {
  return {
    id: d.id,
    webhook_id: d.webhookId,
    event: d.eventType,
    event_id: d.eventId,
    status: d.status,
    attempts: d.attemptCount,
    last_attempt: d.lastAttemptAt ? String(Math.floor(d.lastAttemptAt.getTime() / 1000)) : null,
    next_attempt: d.nextAttemptAt && d.status === "pending" ? String(Math.floor(d.nextAttemptAt.getTime() / 1000)) : null,
    created_at: d.createdAt.toISOString(),
  };
}

async function jsonBody(req: IncomingMessage, allowed: readonly string[]): Promise<Record<string, unknown>> {
  const type = mediaType(req);
  if (type !== "application/json") {
    throw appError("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json");
  }
  const raw = await readBody(req);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString("utf8"));
  } catch {
    throw badInput("request body is not valid JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw badInput("request body must be a JSON object");
  }
  const unknown = Object.keys(parsed).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) throw badInput(`unknown field ${unknown.map((k) => JSON.stringify(k)).join(", ")}`);
  return parsed as Record<string, unknown>;
}

function pageParams(url: URL): { limit: number; cursor: string | undefined } {
  const rawLimit = url.searchParams.get("limit");
  const limit = rawLimit === null ? DEFAULT_LIMIT : Number(rawLimit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw badInput(`limit must be an integer from 1 to ${MAX_LIMIT}`, "limit");
  }
  return { limit, cursor: url.searchParams.get("cursor") || undefined };
}

function optionalString(body: Record<string, unknown>, key: string): string | null | undefined {
  const value = body[key];
  if (value === undefined || value === null) return value as null | undefined;
  if (typeof value !== "string") throw badInput(`${key} must be a string`, key);
  return value;
}

/**
 * The REST API of the platform documentation (CONTRACT §4). Handlers call the same service
 * functions as the GraphQL resolvers; only the wire format lives here.
 */
export function createRestHandler(app: App) {

  const routes: Array<{ method: string; pattern: RegExp; handle: (r: Request, id?: string) => Promise<Answer> }> = [
    {
      method: "POST",
      pattern: /^\/api\/v1\/webhooks\/?$/,
      async handle({ req, viewer }) {
        const accountId = requireAccount(viewer);
        const body = await jsonBody(req, ["url", "events", "description"]);
        const { webhook, secret } = await createWebhook(app, accountId, {
          url: optionalString(body, "url") ?? "",
          events: body.events,
          description: optionalString(body, "description"),
        });
        return {
          status: 201,
          body: { id: webhook.id, url: webhook.url, events: webhook.events, status: webhook.status, secret },
        };
      },
    },
    {
      method: "GET",
      pattern: /^\/api\/v1\/webhooks\/?$/,
      async handle({ url, viewer }) {
        const { limit, cursor } = pageParams(url);
        const status = url.searchParams.get("status");
        if (status !== null && status !== "active" && status !== "disabled") {
          throw badInput("status must be active or disabled", "status");
        }
        const page = await listWebhooks(app, requireAccount(viewer), { limit, cursor, status: status ?? undefined });
        return {
          status: 200,
          body: { data: page.data.map(webhookJson), has_more: page.nextCursor !== null, next_cursor: page.nextCursor },
        };
      },
    },
    {
      method: "GET",
      pattern: /^\/api\/v1\/webhooks\/([^/]+)\/?$/,
      async handle({ viewer }, id) {
        return { status: 200, body: webhookJson(await getWebhook(app, requireAccount(viewer), id!)) };
      },
    },
    {
      method: "PATCH",
      pattern: /^\/api\/v1\/webhooks\/([^/]+)\/?$/,
      async handle({ req, viewer }, id) {
        const accountId = requireAccount(viewer);
        await getWebhook(app, accountId, id!);
        const body = await jsonBody(req, ["url", "events", "description", "status"]);
        const status = body.status;
        if (status !== undefined && status !== "active" && status !== "disabled") {
          throw badInput("status must be active or disabled", "status");
        }
        const webhook = await updateWebhook(app, accountId, id!, {
          ...(body.url !== undefined ? { url: optionalString(body, "url") } : {}),
          ...(body.events !== undefined ? { events: body.events } : {}),
          ...(body.description !== undefined ? { description: optionalString(body, "description") } : {}),
          ...(status !== undefined ? { status } : {}),
        });
        return { status: 200, body: webhookJson(webhook) };
      },
    },
    {
      method: "DELETE",
      pattern: /^\/api\/v1\/webhooks\/([^/]+)\/?$/,
      async handle({ viewer }, id) {
        await deleteWebhook(app, requireAccount(viewer), id!);
        return { status: 204 };
      },
    },
    {
      method: "GET",
      pattern: /^\/api\/v1\/webhooks\/([^/]+)\/deliveries\/?$/,
      async handle({ url, viewer }, id) {
        const accountId = requireAccount(viewer);
        await getWebhook(app, accountId, id!);
        const { limit, cursor } = pageParams(url);
        const status = url.searchParams.get("status");
        if (status !== null && !["pending", "succeeded", "failed"].includes(status)) {
          throw badInput("status must be pending, succeeded or failed", "status");
        }
        const rows = await app.db.delivery.findMany({
          where: {
            accountId,
            webhookId: id!,
            ...(status ? { status: status as Delivery["status"] } : {}),
            ...(cursor ? { id: { lt: cursor } } : {}),
          },
          orderBy: { id: "desc" },
          take: limit + 1,
        });
        const data = rows.slice(0, limit);
        const nextCursor = rows.length > limit ? data[data.length - 1]!.id : null;
        return { status: 200, body: { data: data.map(deliveryJson), has_more: nextCursor !== null, next_cursor: nextCursor } };
      },
    },
    {
      method: "POST",
      pattern: /^\/api\/v1\/events\/?$/,
      async handle({ req, viewer }) {
        const body = await jsonBody(req, ["event", "data", "idempotency_key", "account_id"]);
        const event = await publishEvent(app, viewer, {
          type: body.event,
          data: body.data,
          idempotencyKey: optionalString(body, "idempotency_key"),
          accountId: optionalString(body, "account_id"),
        });
        return { status: 202, body: { id: event.id, event: event.type, timestamp: event.timestamp, data: event.data } };
      },
    },
  ];

  return async function handleRest(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    let viewer: Viewer | undefined;
    try {
      viewer = await app.auth.authenticate(req.headers.authorization, req.headers[ACT_AS_HEADER] as string | undefined);
      await app.limiter.consume(viewer);
      let matched = false;
      for (const route of routes) {
        const match = route.pattern.exec(url.pathname);
        if (!match) continue;
        matched = true;
        if (route.method !== req.method) continue;
        const id = match[1] ? decodeURIComponent(match[1]) : undefined;
        send(res, await route.handle({ req, url, viewer }, id));
        return;
      }
      if (matched) send(res, { status: 405, body: { error: `Method ${req.method} not allowed` } });
      else throw notFound("route", url.pathname);
    } catch (error) {
      const code = errorCode(error);
      if (code && code !== "INTERNAL_SERVER_ERROR") {
        const extensions = (error as { extensions: { retryAfter?: number } }).extensions;
        const message = code === "NOT_FOUND" && !viewer ? "Not found" : (error as Error).message;
        send(res, {
          status: ERROR_STATUS[code],
          body: { error: code === "NOT_FOUND" && message.startsWith("route ") ? "Not found" : message },
          ...(extensions.retryAfter ? { headers: { "retry-after": String(extensions.retryAfter) } } : {}),
        });
        return;
      }
      const errorId = reportUnexpectedError(app, viewer, error);
      send(res, { status: 500, body: { error: "Internal server error", error_id: errorId } });
    }
  };
}
