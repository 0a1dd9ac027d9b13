import { beforeAll, describe, expect, it } from "vitest";
import type { TestApp } from "../helpers/app.ts";
import { describeEachMode } from "../helpers/backends.ts";
import type { Responder, RoutedReceiver } from "../helpers/receiver.ts";
import { useDeliverySuite } from "../helpers/suite.ts";
import { requestsFor, until, waitForRequests } from "../helpers/verify.ts";

const CREATE = `mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id } } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { id status } }`;
const PUBLISH = `mutation ($input: PublishEventInput!) { publishEvent(input: $input) { id type timestamp data createdAt } }`;
const EVENTS = `query ($type: EventType, $first: Int) { events(type: $type, first: $first) { edges { node { id type } } } }`;
const EVENT = `query ($id: ID!) { event(id: $id) { id type timestamp data createdAt } }`;
const DELIVERIES = `query ($webhookId: ID, $eventId: ID, $status: DeliveryStatus, $eventType: EventType, $first: Int, $after: String) {
  deliveries(webhookId: $webhookId, eventId: $eventId, status: $status, eventType: $eventType, first: $first, after: $after) {
    edges { cursor node { id status webhook { id } event { id type } } }
    pageInfo { hasNextPage endCursor } } }`;
// Kept shallow: with \`webhook { id }\` also selected inside node, the document's cost (5983) is over
// the server's limit (5000), which is reported separately.
const WEBHOOK_DELIVERIES = `query ($id: ID!, $status: DeliveryStatus) { webhook(id: $id) { id
  deliveries(first: 100, status: $status) { edges { node { id status event { id } } } } } }`;

const AGENT = { agent_id: "agent_1", name: "Agent", created_by: "user_1" };

interface DeliveryRow {
  id: string;
  status: string;
  webhook: { id: string };
  event: { id: string; type: string };
}

describeEachMode("publishing events", (mode) => {
  const suite = useDeliverySuite(mode, { API_RATE_LIMIT: "10000/s" });
  let app: TestApp;
  let receiver: RoutedReceiver;
  let routes: Map<string, Responder>;
  let paths = 0;

  beforeAll(() => {
    ({ app, receiver, routes } = suite);
  });

  /** A webhook with its own receiver path (answering 200 unless `responder` says otherwise). */
  async function webhook(apiKey: string, events: string[], responder?: Responder) {
    const path = `/hook/p${++paths}`;
    if (responder) routes.set(path, responder);
    const created = await app.gql(apiKey, CREATE, { input: { url: `http://127.0.0.1:${receiver.port}${path}`, events } });
    expect(created.errors).toBeUndefined();
    return { id: created.data.createWebhook.webhook.id as string, path };
  }

  const at = (path: string) => () => receiver.requests.filter((r) => r.path === path);

  async function publish(key: string, input: Record<string, unknown>) {
    return app.gql(key, PUBLISH, { input });
  }

  async function deliveries(key: string, variables: Record<string, unknown> = {}): Promise<DeliveryRow[]> {
    const result = await app.gql(key, DELIVERIES, { first: 100, ...variables });
    expect(result.errors).toBeUndefined();
    return result.data.deliveries.edges.map((e: { node: DeliveryRow }) => e.node);
  }

  async function eventIds(key: string, type?: string): Promise<string[]> {
    const result = await app.gql(key, EVENTS, { first: 100, ...(type ? { type } : {}) });
    expect(result.errors).toBeUndefined();
    return result.data.events.edges.map((e: { node: { id: string } }) => e.node.id);
  }

  const newestFirst = (ids: string[]) => [...ids].sort().reverse();

  describe("idempotency keys", () => {
    it("the same key twice returns the same event and delivers it once; another key makes another event", async () => {
      const { apiKey } = await app.createAccount();
      const hook = await webhook(apiKey, ["agent_created"]);
      const first = await publish(apiKey, { type: "agent_created", data: AGENT, idempotencyKey: "order-1" });
      expect(first.errors).toBeUndefined();
      const again = await publish(apiKey, { type: "agent_created", data: { ...AGENT, name: "changed" }, idempotencyKey: "order-1" });
      expect(again.errors).toBeUndefined();
      expect(again.data.publishEvent).toEqual(first.data.publishEvent);
      const eventId = first.data.publishEvent.id;

      const other = await publish(apiKey, { type: "agent_created", data: AGENT, idempotencyKey: "order-2" });
      expect(other.errors).toBeUndefined();
      expect(other.data.publishEvent.id).not.toBe(eventId);

      expect(await eventIds(apiKey)).toEqual([other.data.publishEvent.id, eventId]);
      expect(await deliveries(apiKey, { eventId })).toHaveLength(1);
      expect(await deliveries(apiKey, { eventId: other.data.publishEvent.id })).toHaveLength(1);
      // The receiver got the first event, then the second; the first only once.
      await waitForRequests(at(hook.path), eventId, 1);
      await waitForRequests(at(hook.path), other.data.publishEvent.id, 1);
      await until(async () => (await deliveries(apiKey, { status: "succeeded" })).length === 2);
      expect(requestsFor(at(hook.path)(), eventId)).toHaveLength(1);
      expect(JSON.parse(requestsFor(at(hook.path)(), eventId)[0]!.body).data.name).toBe("Agent");
    });

    it("the same key sent concurrently still makes one event and one delivery", async () => {
      const { apiKey } = await app.createAccount();
      await webhook(apiKey, ["agent_created"]);
      const results = await Promise.all(
        Array.from({ length: 16 }, () => publish(apiKey, { type: "agent_created", data: AGENT, idempotencyKey: "race" })),
      );
      for (const result of results) expect(result.errors).toBeUndefined();
      const ids = new Set(results.map((r) => r.data.publishEvent.id));
      expect(ids.size).toBe(1);
      expect(await eventIds(apiKey)).toEqual([...ids]);
      expect(await deliveries(apiKey)).toHaveLength(1);
    });

    it("a key older than 24 hours is forgotten: the same key then makes a new event", async () => {
      const { apiKey } = await app.createAccount();
      await webhook(apiKey, ["agent_created"]);
      const first = await publish(apiKey, { type: "agent_created", data: AGENT, idempotencyKey: "daily" });
      expect(first.errors).toBeUndefined();
      // 23 hours later it still answers with the first event.
      await app.handle.app.db.event.update({
        where: { id: first.data.publishEvent.id },
        data: { createdAt: new Date(Date.now() - 23 * 3600_000) },
      });
      const within = await publish(apiKey, { type: "agent_created", data: AGENT, idempotencyKey: "daily" });
      expect(within.data.publishEvent.id).toBe(first.data.publishEvent.id);
      // 25 hours later it is a new event, delivered on its own.
      await app.handle.app.db.event.update({
        where: { id: first.data.publishEvent.id },
        data: { createdAt: new Date(Date.now() - 25 * 3600_000) },
      });
      const after = await publish(apiKey, { type: "agent_created", data: AGENT, idempotencyKey: "daily" });
      expect(after.errors).toBeUndefined();
      expect(after.data.publishEvent.id).not.toBe(first.data.publishEvent.id);
      expect(await eventIds(apiKey)).toEqual([after.data.publishEvent.id, first.data.publishEvent.id]);
      expect(await deliveries(apiKey, { eventId: after.data.publishEvent.id })).toHaveLength(1);
    });

    it("keys belong to one account: another account's same key makes its own event", async () => {
      const a = await app.createAccount();
      const b = await app.createAccount();
      const inA = await publish(a.apiKey, { type: "agent_created", data: AGENT, idempotencyKey: "shared-key" });
      const inB = await publish(b.apiKey, { type: "agent_created", data: AGENT, idempotencyKey: "shared-key" });
      expect(inA.errors).toBeUndefined();
      expect(inB.errors).toBeUndefined();
      expect(inB.data.publishEvent.id).not.toBe(inA.data.publishEvent.id);
      expect(await eventIds(b.apiKey)).toEqual([inB.data.publishEvent.id]);
    });
  });

  describe("validation against the catalog", () => {
    let apiKey: string;
    beforeAll(async () => {
      ({ apiKey } = await app.createAccount());
      await webhook(apiKey, ["agent_created", "message_received", "user_logged_in"]);
    });

    const pad = (bytes: number) => {
      const base = { ...AGENT, pad: "" };
      const overhead = Buffer.byteLength(JSON.stringify(base));
      return { ...AGENT, pad: "x".repeat(bytes - overhead) };
    };

    it.each([
      ["a required field missing", { type: "agent_created", data: { agent_id: "a", name: "n" } }],
      ["a required field null", { type: "user_logged_in", data: { user_id: null } }],
      ["message_received without conversation_id", { type: "message_received", data: { agent_id: "a", user_id: "u", message: "m" } }],
      ["data a string", { type: "user_logged_in", data: "user_1" }],
      ["data an array", { type: "user_logged_in", data: [{ user_id: "u" }] }],
      ["data a number", { type: "user_logged_in", data: 42 }],
      ["data over 256 KiB", { type: "agent_created", data: pad(256 * 1024 + 1) }],
    ])("%s: BAD_USER_INPUT, nothing stored", async (_name, input) => {
      const before = await eventIds(apiKey);
      const result = await publish(apiKey, input);
      expect(result.data?.publishEvent ?? null).toBeNull();
      expect(await eventIds(apiKey)).toEqual(before);
      expect(await deliveries(apiKey)).toHaveLength(before.length);
      expect(result.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    });

    it("exactly 256 KiB of data is accepted, and more fields than required are kept", async () => {
      const data = pad(256 * 1024);
      expect(Buffer.byteLength(JSON.stringify(data))).toBe(256 * 1024);
      const result = await publish(apiKey, { type: "agent_created", data });
      expect(result.errors).toBeUndefined();
      expect(result.data.publishEvent.data).toEqual(data);
      const kept = await publish(apiKey, { type: "user_logged_in", data: { user_id: "u", ip: "192.0.2.1", meta: { n: 1 } } });
      expect(kept.errors).toBeUndefined();
      const read = await app.gql(apiKey, EVENT, { id: kept.data.publishEvent.id });
      expect(read.data.event.data).toEqual({ user_id: "u", ip: "192.0.2.1", meta: { n: 1 } });
    });
  });

  describe("who may set accountId", () => {
    it("the admin key publishes for the account it names; that account's webhooks get it", async () => {
      const { apiKey, accountId } = await app.createAccount();
      const hook = await webhook(apiKey, ["agent_created"]);
      const result = await publish(app.adminKey, { type: "agent_created", data: AGENT, accountId });
      expect(result.errors).toBeUndefined();
      const eventId = result.data.publishEvent.id;
      expect(await eventIds(apiKey)).toEqual([eventId]);
      const [request] = await waitForRequests(at(hook.path), eventId, 1);
      expect(JSON.parse(request!.body)).toEqual({ event: "agent_created", timestamp: result.data.publishEvent.timestamp, data: AGENT });
    });

    it("an account key naming an account: FORBIDDEN, nothing stored anywhere", async () => {
      const a = await app.createAccount();
      const b = await app.createAccount();
      await webhook(b.apiKey, ["agent_created"]);
      const result = await publish(a.apiKey, { type: "agent_created", data: AGENT, accountId: b.accountId });
      expect(result.data?.publishEvent ?? null).toBeNull();
      expect(await eventIds(a.apiKey)).toEqual([]);
      expect(await eventIds(b.apiKey)).toEqual([]);
      expect(await deliveries(b.apiKey)).toEqual([]);
      expect(result.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
    });
  });

  it("fan-out: exactly the active webhooks subscribed to the type get the event", async () => {
    const { apiKey } = await app.createAccount();
    const subscribed = await webhook(apiKey, ["agent_created"]);
    const alsoSubscribed = await webhook(apiKey, ["user_logged_in", "agent_created"]);
    const otherType = await webhook(apiKey, ["user_logged_in"]);
    const disabled = await webhook(apiKey, ["agent_created"]);
    const off = await app.gql(apiKey, UPDATE, { id: disabled.id, input: { status: "disabled" } });
    expect(off.data.updateWebhook.status).toBe("disabled");

    const result = await publish(apiKey, { type: "agent_created", data: AGENT });
    expect(result.errors).toBeUndefined();
    const eventId = result.data.publishEvent.id;
    // The deliveries exist when publishEvent answers.
    const rows = await deliveries(apiKey, { eventId });
    expect(rows.map((r) => r.webhook.id).sort()).toEqual([subscribed.id, alsoSubscribed.id].sort());

    await waitForRequests(at(subscribed.path), eventId, 1);
    await waitForRequests(at(alsoSubscribed.path), eventId, 1);
    await until(async () => (await deliveries(apiKey, { eventId, status: "succeeded" })).length === 2);
    expect(at(subscribed.path)()).toHaveLength(1);
    expect(at(alsoSubscribed.path)()).toHaveLength(1);
    expect(at(otherType.path)()).toHaveLength(0);
    expect(at(disabled.path)()).toHaveLength(0);
  });

  describe("reading events and the delivery log", () => {
    let a: { apiKey: string; accountId: string };
    let b: { apiKey: string; accountId: string };
    let good: { id: string; path: string };
    let bad: { id: string; path: string };
    let bHook: { id: string; path: string };
    const ids: Record<"e1" | "e2" | "e3" | "b1", string> = { e1: "", e2: "", e3: "", b1: "" };

    beforeAll(async () => {
      a = await app.createAccount("A");
      b = await app.createAccount("B");
      good = await webhook(a.apiKey, ["agent_created", "user_logged_in"]);
      bad = await webhook(a.apiKey, ["user_logged_in"], (_req, _n, res) => void res.writeHead(500).end("no"));
      bHook = await webhook(b.apiKey, ["agent_created"]);
      const publishOk = async (key: string, input: Record<string, unknown>) => {
        const result = await publish(key, input);
        expect(result.errors).toBeUndefined();
        return result.data.publishEvent.id as string;
      };
      ids.e1 = await publishOk(a.apiKey, { type: "agent_created", data: AGENT });
      ids.b1 = await publishOk(b.apiKey, { type: "agent_created", data: AGENT });
      ids.e2 = await publishOk(a.apiKey, { type: "user_logged_in", data: { user_id: "u1" } });
      ids.e3 = await publishOk(a.apiKey, { type: "agent_created", data: AGENT });
      // A: e1→good, e2→good, e2→bad (fails), e3→good. B: b1→bHook.
      await until(async () => {
        const all = await deliveries(a.apiKey);
        return all.length === 4 && all.every((d) => d.status !== "pending");
      });
      await until(async () => (await deliveries(b.apiKey, { status: "succeeded" })).length === 1);
    });

    it("events: the viewer's only, newest first, filtered by type", async () => {
      expect(await eventIds(a.apiKey)).toEqual([ids.e3, ids.e2, ids.e1]);
      expect(await eventIds(a.apiKey, "agent_created")).toEqual([ids.e3, ids.e1]);
      expect(await eventIds(a.apiKey, "user_logged_in")).toEqual([ids.e2]);
      expect(await eventIds(a.apiKey, "server_error")).toEqual([]);
      expect(await eventIds(b.apiKey)).toEqual([ids.b1]);
    });

    it("event(id): the viewer's event, null for another account's", async () => {
      const own = await app.gql(a.apiKey, EVENT, { id: ids.e2 });
      expect(own.data.event).toMatchObject({ id: ids.e2, type: "user_logged_in", data: { user_id: "u1" } });
      expect(Number.isInteger(own.data.event.timestamp)).toBe(true);
      const foreign = await app.gql(a.apiKey, EVENT, { id: ids.b1 });
      expect(foreign.data?.event ?? null).toBeNull();
      expect(JSON.stringify(foreign)).not.toContain(AGENT.agent_id);
    });

    it("deliveries: the viewer's only, newest first", async () => {
      const all = await deliveries(a.apiKey);
      expect(all).toHaveLength(4);
      expect(all.map((d) => d.id)).toEqual(newestFirst(all.map((d) => d.id)));
      expect(all.map((d) => d.event.id)).toEqual([ids.e3, ids.e2, ids.e2, ids.e1]);
      for (const row of all) expect([good.id, bad.id]).toContain(row.webhook.id);
      const own = await deliveries(b.apiKey);
      expect(own.map((d) => [d.event.id, d.webhook.id])).toEqual([[ids.b1, bHook.id]]);
    });

    it("deliveries filtered by webhookId, eventId, status and eventType", async () => {
      const byWebhook = await deliveries(a.apiKey, { webhookId: good.id });
      expect(byWebhook.map((d) => d.event.id)).toEqual([ids.e3, ids.e2, ids.e1]);
      expect((await deliveries(a.apiKey, { webhookId: bad.id })).map((d) => d.event.id)).toEqual([ids.e2]);
      expect(await deliveries(a.apiKey, { webhookId: bHook.id })).toEqual([]);

      const byEvent = await deliveries(a.apiKey, { eventId: ids.e2 });
      expect(byEvent.map((d) => d.webhook.id).sort()).toEqual([good.id, bad.id].sort());
      expect(await deliveries(a.apiKey, { eventId: ids.b1 })).toEqual([]);

      const failed = await deliveries(a.apiKey, { status: "failed" });
      expect(failed.map((d) => [d.webhook.id, d.event.id])).toEqual([[bad.id, ids.e2]]);
      expect((await deliveries(a.apiKey, { status: "succeeded" })).map((d) => d.event.id)).toEqual([ids.e3, ids.e2, ids.e1]);
      expect(await deliveries(a.apiKey, { status: "pending" })).toEqual([]);

      const logins = await deliveries(a.apiKey, { eventType: "user_logged_in" });
      expect(logins.map((d) => d.event.id)).toEqual([ids.e2, ids.e2]);
      expect(logins.every((d) => d.event.type === "user_logged_in")).toBe(true);
      expect((await deliveries(a.apiKey, { eventType: "agent_created" })).map((d) => d.event.id)).toEqual([ids.e3, ids.e1]);

      const combined = await deliveries(a.apiKey, { webhookId: good.id, eventType: "agent_created", status: "succeeded" });
      expect(combined.map((d) => d.event.id)).toEqual([ids.e3, ids.e1]);
    });

    it("deliveries page with first/after without gaps or repeats", async () => {
      const seen: string[] = [];
      let after: string | undefined;
      for (let page = 0; page < 10; page++) {
        const result = await app.gql(a.apiKey, DELIVERIES, { first: 1, ...(after ? { after } : {}) });
        expect(result.errors).toBeUndefined();
        const connection = result.data.deliveries;
        seen.push(...connection.edges.map((e: { node: { id: string } }) => e.node.id));
        if (!connection.pageInfo.hasNextPage) break;
        after = connection.pageInfo.endCursor;
      }
      expect(seen).toEqual((await deliveries(a.apiKey)).map((d) => d.id));
    });

    it("Webhook.deliveries: that webhook's, newest first, by status; another account's webhook is not visible", async () => {
      const result = await app.gql(a.apiKey, WEBHOOK_DELIVERIES, { id: good.id });
      expect(result.errors).toBeUndefined();
      const rows = result.data.webhook.deliveries.edges.map((e: { node: DeliveryRow }) => e.node);
      expect(rows.map((d: DeliveryRow) => d.event.id)).toEqual([ids.e3, ids.e2, ids.e1]);
      expect(rows.map((d: DeliveryRow) => d.id)).toEqual((await deliveries(a.apiKey, { webhookId: good.id })).map((d) => d.id));
      const failed = await app.gql(a.apiKey, WEBHOOK_DELIVERIES, { id: bad.id, status: "failed" });
      expect(failed.data.webhook.deliveries.edges.map((e: { node: DeliveryRow }) => e.node.event.id)).toEqual([ids.e2]);
      const none = await app.gql(a.apiKey, WEBHOOK_DELIVERIES, { id: bad.id, status: "succeeded" });
      expect(none.data.webhook.deliveries.edges).toEqual([]);
      const foreign = await app.gql(a.apiKey, WEBHOOK_DELIVERIES, { id: bHook.id });
      expect(foreign.data?.webhook ?? null).toBeNull();
    });
  });
});
