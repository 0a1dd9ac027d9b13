import { readFile } from "node:fs/promises";
import path from "node:path";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, TEST_LOG_DIR, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { startReceiver, type Receiver } from "../helpers/receiver.ts";
import { untilValue as until } from "../helpers/verify.ts";

/**
 * A genuine internal failure (a table or column the code needs is renamed under it): the client
 * sees a masked error with an id to quote, the full error is logged server-side under that id,
 * and the account receives a `server_error` event with the id and a generic message only
 * (CONTRACT §3, §5).
 */

interface StreamedEvent {
  id: string;
  type: string;
  data: Record<string, unknown>;
}

/** Whatever a client must never be shown about an internal failure. */
const INTERNALS = [
  /DeliveryAttempt/i,
  /lastAttemptAt/i,
  /relation "/i,
  /column "/i,
  /table `/i,
  /does not exist/i,
  /SELECT|INSERT|UPDATE|FROM "/,
  /prisma/i,
  /\.ts:\d+/,
  /\bat [\w.<>]+ \(/,
  /stack/i,
  /postgres/i,
  /P20\d\d/,
];

describeEachMode("server errors", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let receiver: Receiver;
  let ws: Client;
  let account: { accountId: string; apiKey: string };
  let webhookSecret: string;
  let deliveryId: string;
  const streamed: StreamedEvent[] = [];
  const streamErrors: unknown[] = [];
  const logFile = path.join(TEST_LOG_DIR, `app-${process.pid}.log`);

  const db = () => app.handle.app.db;

  function expectNoInternals(text: string, context: string): void {
    for (const pattern of INTERNALS) expect(text, `${context} leaks ${pattern}: ${text.slice(0, 500)}`).not.toMatch(pattern);
    expect(text).not.toContain(account.apiKey);
    expect(text).not.toContain(app.adminKey);
    expect(text).not.toContain(webhookSecret);
  }

  /** A server_error event's data: exactly the id and a generic message. */
  function expectGenericServerError(data: Record<string, unknown>, errorId: string): void {
    expect(Object.keys(data).sort()).toEqual(["error_id", "message"]);
    expect(data.error_id).toBe(errorId);
    expect(typeof data.message).toBe("string");
    expect((data.message as string).length).toBeGreaterThan(0);
    expectNoInternals(JSON.stringify(data), "server_error data");
  }

  /** The log line(s) for an error id, once the logger has flushed them. */
  async function logLinesFor(errorId: string): Promise<Array<Record<string, any>>> {
    const lines = await until(
      async () =>
        (await readFile(logFile, "utf8").catch(() => ""))
          .split("\n")
          .filter((line) => line.includes(errorId))
          .map((line) => JSON.parse(line) as Record<string, any>),
      (found) => found.some((line) => line.level >= 50),
    );
    return lines;
  }

  async function serverErrorEvents(key: string): Promise<StreamedEvent[]> {
    const result = await app.gql(key, `{ events(type: server_error, first: 50) { edges { node { id type data } } } }`);
    expect(result.errors).toBeUndefined();
    return result.data.events.edges.map((e: { node: StreamedEvent }) => e.node);
  }

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend);
    receiver = await startReceiver();
    account = await app.createAccount("Breaks");

    // A delivery with a recorded attempt, to be read back while its attempts table is gone.
    const created = await app.gql(
      account.apiKey,
      `mutation ($url: String!) { createWebhook(input: { url: $url, events: [agent_created] }) { webhook { id } secret } }`,
      { url: receiver.url },
    );
    webhookSecret = created.data.createWebhook.secret;
    const published = await app.gql(
      account.apiKey,
      `mutation { publishEvent(input: { type: agent_created, data: { agent_id: "agent_1", name: "A", created_by: "u" } }) { id } }`,
    );
    const eventId = published.data.publishEvent.id;
    const delivery = await until(
      () => db().delivery.findFirst({ where: { eventId }, include: { attempts: true } }),
      (d) => d?.status === "succeeded" && d.attempts.length === 1,
    );
    deliveryId = delivery!.id;

    // A subscriber of the account's server_error events, live before anything breaks.
    ws = createClient({
      url: app.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${account.apiKey}` },
      lazy: true,
      retryAttempts: 0,
    });
    ws.subscribe<{ events: StreamedEvent }>(
      { query: `subscription { events(types: [server_error]) { id type data } }` },
      {
        next: (result) => {
          if (result.errors) streamErrors.push(...result.errors);
          if (result.data?.events) streamed.push(result.data.events);
        },
        error: (error) => void streamErrors.push(error),
        complete: () => {},
      },
    );
    const probes: string[] = [];
    await until(
      async () => {
        const probe = `probe-${probes.length}`;
        probes.push(probe);
        const sent = await app.gql(account.apiKey, `mutation ($input: PublishEventInput!) { publishEvent(input: $input) { id } }`, {
          input: { type: "server_error", data: { error_id: probe, message: "probe" } },
        });
        expect(sent.errors).toBeUndefined();
        await new Promise((resolve) => setTimeout(resolve, 200));
        return streamed.some((e) => probes.includes(String(e.data.error_id)));
      },
      (live) => live || streamErrors.length > 0,
    );
    expect(streamErrors).toEqual([]);
  });
  afterAll(async () => {
    await ws?.dispose();
    await receiver?.close();
    await app?.stop();
    await backend?.dispose();
  });

  it("GraphQL: a failing resolver gives a masked INTERNAL_SERVER_ERROR with an errorId, a server_error event and a full log line", async () => {
    const before = streamed.length;
    let result;
    await db().$executeRawUnsafe(`ALTER TABLE "DeliveryAttempt" RENAME TO "DeliveryAttempt_x"`);
    try {
      result = await app.gql(account.apiKey, `query ($id: ID!) { delivery(id: $id) { id attempts { number } } }`, { id: deliveryId });
    } finally {
      await db().$executeRawUnsafe(`ALTER TABLE "DeliveryAttempt_x" RENAME TO "DeliveryAttempt"`);
    }
    expect(result.status).toBeLessThan(500);
    expect(result.errors).toHaveLength(1);
    const [error] = result.errors!;
    expect(error!.extensions?.code).toBe("INTERNAL_SERVER_ERROR");
    expect(Object.keys(error!.extensions!).sort()).toEqual(["code", "errorId"]);
    const errorId = error!.extensions!.errorId as string;
    expect(errorId).toMatch(/^err_[0-9a-z]{26}$/);
    expect(error!.message).toBe("Unexpected error.");
    expect(result.data).toEqual({ delivery: null });
    expectNoInternals(JSON.stringify(result.errors!.map(({ message, extensions }) => ({ message, extensions }))), "GraphQL answer");

    // The full error is in the server's log, under the same id.
    const lines = await logLinesFor(errorId);
    const line = lines.find((l) => l.level >= 50)!;
    expect(JSON.stringify(line)).toMatch(/DeliveryAttempt/);

    // The subscriber gets the server_error event, with the same id and nothing else of use.
    const event = await until(
      async () => streamed.slice(before).find((e) => e.data.error_id === errorId),
      (found) => found !== undefined,
      5_000,
    );
    expect(event!.type).toBe("server_error");
    expectGenericServerError(event!.data, errorId);

    // …and so does the events query.
    const stored = (await serverErrorEvents(account.apiKey)).filter((e) => e.data.error_id === errorId);
    expect(stored).toHaveLength(1);
    expect(stored[0]!.id).toBe(event!.id);
    expect(line.accountId).toBe(account.accountId);


    // Back to normal once the table is back.
    const healed = await app.gql(account.apiKey, `query ($id: ID!) { delivery(id: $id) { id attempts { number } } }`, { id: deliveryId });
    expect(healed.errors).toBeUndefined();
    expect(healed.data.delivery.attempts).toEqual([{ number: 1 }]);
  });

  it("REST: a failing route gives 500 {error: \"Internal server error\", error_id}, a server_error event and a full log line", async () => {
    const other = await app.createAccount("Breaks over REST");
    const created = await fetch(`${app.baseUrl}/api/v1/webhooks`, {
      method: "POST",
      headers: { authorization: `Bearer ${other.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ url: "http://127.0.0.1:9/never", events: ["agent_updated"] }),
    });
    expect(created.status).toBe(201);
    const webhook = (await created.json()) as { id: string };

    let status = 0;
    let text = "";
    // The delivery log reads every column of Delivery; publishing the server_error event (no
    // webhook of this account wants it) writes none of the renamed one.
    await db().$executeRawUnsafe(`ALTER TABLE "Delivery" RENAME COLUMN "lastAttemptAt" TO "lastAttemptAt_x"`);
    try {
      const response = await fetch(`${app.baseUrl}/api/v1/webhooks/${webhook.id}/deliveries`, {
        headers: { authorization: `Bearer ${other.apiKey}` },
      });
      status = response.status;
      text = await response.text();
    } finally {
      await db().$executeRawUnsafe(`ALTER TABLE "Delivery" RENAME COLUMN "lastAttemptAt_x" TO "lastAttemptAt"`);
    }
    expect(status, text).toBe(500);
    const body = JSON.parse(text) as { error: string; error_id: string };
    expect(Object.keys(body).sort()).toEqual(["error", "error_id"]);
    expect(body.error).toBe("Internal server error");
    expect(body.error_id).toMatch(/^err_[0-9a-z]{26}$/);
    expectNoInternals(text, "REST answer");

    const event = await until(
      async () => (await serverErrorEvents(other.apiKey)).find((e) => e.data.error_id === body.error_id),
      (found) => found !== undefined,
    );
    expectGenericServerError(event!.data, body.error_id);
    // Only the failing account hears of it.
    expect((await serverErrorEvents(account.apiKey)).some((e) => e.data.error_id === body.error_id)).toBe(false);
    expect(streamed.some((e) => e.data.error_id === body.error_id)).toBe(false);

    const lines = await logLinesFor(body.error_id);
    const line = lines.find((l) => l.level >= 50)!;
    expect(JSON.stringify(line)).toMatch(/lastAttemptAt/);
    expect(line.accountId).toBe(other.accountId);

    const healed = await fetch(`${app.baseUrl}/api/v1/webhooks/${webhook.id}/deliveries`, {
      headers: { authorization: `Bearer ${other.apiKey}` },
    });
    expect(healed.status).toBe(200);
    expect(await healed.json()).toEqual({ data: [], has_more: false, next_cursor: null });
  });
});
