import type { Viewer } from "../auth/viewer.ts";
import type { Db, Sql } from "../db/client.ts";
import { isPgError } from "../db/errors.ts";
import type { DeliveryQueue } from "../delivery/queue.ts";
import type { EventMessage } from "../delivery/messages.ts";
import type { Event, Prisma } from "../generated/prisma/client.ts";
import { badInput, forbidden, notFound } from "../lib/errors.ts";
import { createBatcher } from "../lib/batcher.ts";
import { newId } from "../lib/ids.ts";
import type { Logger } from "../lib/logger.ts";
import { topics, type PubSub } from "../pubsub/pubsub.ts";
import { validateEventData, validateEventType, validateIdempotencyKey } from "./validation.ts";

export interface PublishDeps {
  db: Db;
  sql: Sql;
  pubsub: PubSub;
  queue: DeliveryQueue;
  log: Logger;
}

export interface PublishEventInput {
  type: unknown;
  data: unknown;
  idempotencyKey?: string | null | undefined;
  /** Admin only: the account the event belongs to. */
  accountId?: string | null | undefined;
}

/** An idempotency key is remembered this long. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;

export function eventMessage(event: Event): EventMessage {
  return {
    id: event.id,
    accountId: event.accountId,
    type: event.type,
    timestamp: event.timestamp,
    data: event.data,
    createdAt: event.createdAt.toISOString(),
  };
}

async function resolveAccount(db: Db, viewer: Viewer, requested: string | null | undefined): Promise<string> {
  if (requested) {
    if (!viewer.admin) throw forbidden("only the admin key may set accountId");
    const account = await db.account.findUnique({ where: { id: requested }, select: { id: true } });
    if (!account) throw notFound("account", requested);
    return account.id;
  }
  if (!viewer.accountId) throw badInput("accountId is required with the admin key", "accountId");
  return viewer.accountId;
}

/**
 * Events with their deliveries (one pending delivery per active webhook of the account subscribed
 * to the type) in ONE statement: one round trip, atomic without an interactive transaction. A
 * delivery's id is `dlv_` + the event's ULID + a 6-digit hex counter, so deliveries sort by time
 * like every id. Returns each event's deliveries (id and webhook), in input order.
 */
async function insertEvents(sql: Sql, events: NewEvent[]): Promise<NewDelivery[][]> {
  const { rows } = await sql.query<NewDelivery & { eventId: string }>(
    `WITH input AS (
      SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::timestamptz[])
        AS t(id, account_id, type, ts, data, idempotency_key, created_at)
    ), inserted AS (
      INSERT INTO "Event" (id, "accountId", type, "timestamp", data, "idempotencyKey", "createdAt")
      SELECT id, account_id, type::"EventType", ts, data::json, idempotency_key, created_at FROM input
      RETURNING id, "accountId", type, "createdAt"
    ), deliveries AS (
      INSERT INTO "Delivery" (id, "accountId", "webhookId", "eventId", "eventType", status, "attemptCount",
                              "nextAttemptAt", "createdAt", "updatedAt")
      SELECT 'dlv_' || substr(e.id, 5) || lpad(to_hex(row_number() OVER (PARTITION BY e.id ORDER BY w.id)), 6, '0'),
             w."accountId", w.id, e.id, e.type, 'pending', 0, e."createdAt", e."createdAt", e."createdAt"
      FROM inserted AS e
      JOIN "Webhook" AS w ON w."accountId" = e."accountId" AND w.status = 'active' AND e.type = ANY (w.events)
      RETURNING id, "webhookId", "eventId"
    )
    SELECT id, "webhookId", "eventId" FROM deliveries`,
    [
      events.map((e) => e.id),
      events.map((e) => e.accountId),
      events.map((e) => e.type),
      events.map((e) => e.timestamp),
      events.map((e) => e.json),
      events.map((e) => e.idempotencyKey),
      events.map((e) => e.createdAt.toISOString()),
    ],
  );
  const byEvent = new Map<string, NewDelivery[]>(events.map((e) => [e.id, []]));
  for (const row of rows) byEvent.get(row.eventId)!.push({ id: row.id, webhookId: row.webhookId });
  return events.map((e) => byEvent.get(e.id)!);
}

/** An event about to be stored, with its data's JSON text. */
type NewEvent = Event & { json: string };
/** A delivery the insert created. */
type NewDelivery = { id: string; webhookId: string };

type EventWriter = (event: NewEvent) => Promise<NewDelivery[] | Error>;

/**
 * Concurrent publishes share a statement (group commit): while one insert is in flight the next
 * ones gather. If a batch fails (an idempotency key taken meanwhile), each event is inserted on its
 * own, so one event's conflict never fails another's publish.
 */
function createEventWriter(sql: Sql): EventWriter {
  return createBatcher<NewEvent, NewDelivery[] | Error>(
    async (events) => {
      try {
        return await insertEvents(sql, events);
      } catch (error) {
        if (events.length === 1) return [error as Error];
        return Promise.all(events.map((e) => insertEvents(sql, [e]).then(([created]) => created!, (err: Error) => err)));
      }
    },
    { maxSize: 200, maxInFlight: 2 },
  );
}

const writers = new WeakMap<Sql, EventWriter>();

async function insertEventWithDeliveries(sql: Sql, event: NewEvent): Promise<NewDelivery[]> {
  let write = writers.get(sql);
  if (!write) {
    write = createEventWriter(sql);
    writers.set(sql, write);
  }
  const result = await write(event);
  if (result instanceof Error) throw result;
  return result;
}

/** The live event with this key, if one was published within the window; an older one lets go of it. */
async function findByIdempotencyKey(db: Db, accountId: string, key: string): Promise<Event | null> {
  const existing = await db.event.findUnique({ where: { accountId_idempotencyKey: { accountId, idempotencyKey: key } } });
  if (!existing) return null;
  if (existing.createdAt.getTime() > Date.now() - IDEMPOTENCY_WINDOW_MS) return existing;
  await db.event.updateMany({ where: { id: existing.id, idempotencyKey: key }, data: { idempotencyKey: null } });
  return null;
}

/**
 * Validates an event, stores it with one pending delivery per active webhook of the account that
 * subscribed to its type (one transaction), and only after commit publishes it to subscribers and
 * enqueues the deliveries. The same idempotency key within 24 hours returns the first event.
 */
export async function publishEvent(deps: PublishDeps, viewer: Viewer, input: PublishEventInput): Promise<Event> {
  const type = validateEventType(input.type);
  const { data, json } = validateEventData(type, input.data);
  const idempotencyKey = validateIdempotencyKey(input.idempotencyKey);
  const accountId = await resolveAccount(deps.db, viewer, input.accountId);

  if (idempotencyKey) {
    const existing = await findByIdempotencyKey(deps.db, accountId, idempotencyKey);
    if (existing) return existing;
  }

  const now = new Date();
  const event: Event = {
    id: newId("evt"),
    accountId,
    type,
    timestamp: Math.floor(now.getTime() / 1000),
    data: data as Prisma.JsonValue,
    idempotencyKey,
    createdAt: now,
  };

  let deliveries: NewDelivery[];
  try {
    deliveries = await insertEventWithDeliveries(deps.sql, { ...event, json });
  } catch (error) {
    if (idempotencyKey && isPgError(error, "23505")) {
      const existing = await findByIdempotencyKey(deps.db, accountId, idempotencyKey);
      if (existing) return existing;
    }
    throw error;
  }

  await Promise.all([
    deps.pubsub.publish(topics.events(accountId), eventMessage(event)).catch((error: unknown) => {
      deps.log.warn({ err: error, eventId: event.id }, "could not publish an event to subscribers");
    }),
    deps.queue.enqueue(deliveries.map((d) => ({ deliveryId: d.id, webhookId: d.webhookId, attempt: 0 }))).catch((error: unknown) => {
      deps.log.warn({ err: error, eventId: event.id }, "could not enqueue deliveries; the sweeper will");
    }),
  ]);
  return event;
}
