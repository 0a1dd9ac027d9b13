import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { startReceiver, type Receiver } from "../helpers/receiver.ts";
import { connectSubscriptions, untilLive, type LiveSubscription, type SubscriptionClient } from "../helpers/subscriptions.ts";

const PUBLISH = `mutation ($input: PublishEventInput!) { publishEvent(input: $input) { id type timestamp data createdAt } }`;
const CREATE = `mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id } } }`;
const EVENTS = `subscription ($types: [EventType!]) { events(types: $types) { id type data timestamp createdAt } }`;
const DELIVERY_UPDATES = `subscription ($webhookId: ID) { deliveryUpdated(webhookId: $webhookId) {
  id status attemptCount lastAttemptAt nextAttemptAt webhook { id } event { id } attempts { number succeeded responseStatus } } }`;

interface LiveEvent {
  id: string;
  type: string;
  data: Record<string, unknown>;
  timestamp: number;
  createdAt: string;
}
interface LiveDelivery {
  id: string;
  status: string;
  attemptCount: number;
  lastAttemptAt: string | null;
  nextAttemptAt: string | null;
  webhook: { id: string };
  event: { id: string };
  attempts: Array<{ number: number; succeeded: boolean; responseStatus: number | null }>;
}

const DATA = {
  agent_created: { agent_id: "agent_1", name: "Agent", created_by: "user_1" },
  user_logged_in: { user_id: "user_1" },
} as const;

describeEachMode("subscriptions", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let receiver: Receiver;
  const clients: SubscriptionClient[] = [];

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend);
    receiver = await startReceiver();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.dispose()));
  });
  afterAll(async () => {
    await app?.stop();
    await receiver?.close();
    await backend?.dispose();
  });

  function connect(apiKey: string): SubscriptionClient {
    const client = connectSubscriptions(app.wsUrl, apiKey);
    clients.push(client);
    return client;
  }

  async function publish(apiKey: string, type: keyof typeof DATA, extra: Record<string, unknown> = {}): Promise<LiveEvent> {
    const result = await app.gql(apiKey, PUBLISH, { input: { type, data: { ...DATA[type], ...extra } } });
    expect(result.errors).toBeUndefined();
    return result.data.publishEvent;
  }

  /** Waits until `subscription` streams events of `apiKey`'s account, publishing `type` probes. */
  function live(subscription: LiveSubscription<LiveEvent>, apiKey: string, type: keyof typeof DATA) {
    return untilLive(subscription, async () => {
      const probe = await publish(apiKey, type, { probe: true });
      return (item) => item.id === probe.id;
    });
  }

  it("events(types: [agent_created]) streams agent_created events and not user_logged_in", async () => {
    const { apiKey } = await app.createAccount();
    const subscription = connect(apiKey).subscribe<LiveEvent>(EVENTS, { types: ["agent_created"] });
    await live(subscription, apiKey, "agent_created");

    const excluded = await publish(apiKey, "user_logged_in");
    const wanted = await publish(apiKey, "agent_created", { nested: { list: [1, "two", { three: 3 }] } });
    const received = await subscription.waitFor((e) => e.id === wanted.id);
    // Streamed in publish order: the user_logged_in event came first, so it would be here by now.
    expect(subscription.items.find((e) => e.id === excluded.id)).toBeUndefined();
    expect(subscription.items.every((e) => e.type === "agent_created")).toBe(true);
    expect(received).toEqual({
      id: wanted.id,
      type: "agent_created",
      data: { ...DATA.agent_created, nested: { list: [1, "two", { three: 3 }] } },
      timestamp: wanted.timestamp,
      createdAt: wanted.createdAt,
    });
    expect(subscription.errors).toEqual([]);
  });

  it("events without types streams every type", async () => {
    const { apiKey } = await app.createAccount();
    const subscription = connect(apiKey).subscribe<LiveEvent>(EVENTS);
    await live(subscription, apiKey, "user_logged_in");

    const login = await publish(apiKey, "user_logged_in");
    const agent = await publish(apiKey, "agent_created");
    await subscription.waitFor((e) => e.id === agent.id);
    const login2 = await subscription.waitFor((e) => e.id === login.id);
    expect(login2).toMatchObject({ type: "user_logged_in", data: DATA.user_logged_in, timestamp: login.timestamp });
    const ids = subscription.items.map((e) => e.id);
    expect(ids.indexOf(login.id)).toBeLessThan(ids.indexOf(agent.id));
  });

  it("a subscriber never receives another account's events", async () => {
    const a = await app.createAccount("A");
    const b = await app.createAccount("B");
    const ofA = connect(a.apiKey).subscribe<LiveEvent>(EVENTS);
    const ofB = connect(b.apiKey).subscribe<LiveEvent>(EVENTS);
    await live(ofA, a.apiKey, "agent_created");
    await live(ofB, b.apiKey, "agent_created");

    const forA = await publish(a.apiKey, "agent_created", { secret_of: "A" });
    const forB = await publish(b.apiKey, "agent_created", { secret_of: "B" });
    await ofB.waitFor((e) => e.id === forB.id);
    await ofA.waitFor((e) => e.id === forA.id);
    // A's event was published first: had it leaked to B's subscriber, it would have arrived already.
    expect(ofB.items.map((e) => e.data.secret_of ?? "probe")).not.toContain("A");
    expect(ofB.items.find((e) => e.id === forA.id)).toBeUndefined();
    expect(ofA.items.find((e) => e.id === forB.id)).toBeUndefined();
    // Everything B's subscriber got (probes included) is one of B's own events.
    const listed = await app.gql(b.apiKey, `{ events(first: 100) { edges { node { id } } } }`);
    const bIds = new Set(listed.data.events.edges.map((e: { node: { id: string } }) => e.node.id));
    expect(ofB.items.filter((e) => !bIds.has(e.id))).toEqual([]);
  });

  it("deliveryUpdated(webhookId:) streams the failed attempt, then the success, of that webhook's deliveries", async () => {
    const { apiKey } = await app.createAccount();
    // Every event's first request fails; the retry succeeds.
    const seen = new Set<string>();
    receiver.respond((request, _n, res) => {
      const id = String(request.headers["webhook-id"]);
      if (request.path === "/hook/flaky" && !seen.has(id)) {
        seen.add(id);
        return void res.writeHead(500).end("not yet");
      }
      res.writeHead(200).end("ok");
    });
    const hook = await app.gql(apiKey, CREATE, { input: { url: `${receiver.url}/flaky`, events: ["agent_created"] } });
    const other = await app.gql(apiKey, CREATE, { input: { url: `${receiver.url}/other`, events: ["agent_created"] } });
    const webhookId = hook.data.createWebhook.webhook.id as string;
    const otherId = other.data.createWebhook.webhook.id as string;

    const client = connect(apiKey);
    const updates = client.subscribe<LiveDelivery>(DELIVERY_UPDATES, { webhookId });
    const all = client.subscribe<LiveDelivery>(DELIVERY_UPDATES);
    for (const subscription of [updates, all]) {
      await untilLive(subscription, async () => {
        const probe = await publish(apiKey, "agent_created", { probe: true });
        return (item) => item.event.id === probe.id;
      });
    }

    const event = await publish(apiKey, "agent_created");
    const success = await updates.waitFor((d) => d.event.id === event.id && d.status === "succeeded");
    const mine = updates.items.filter((d) => d.event.id === event.id);
    expect(mine.map((d) => [d.status, d.attemptCount])).toEqual([
      ["pending", 1],
      ["succeeded", 2],
    ]);
    const [failedTry] = mine;
    expect(failedTry).toMatchObject({ id: success.id, webhook: { id: webhookId }, event: { id: event.id } });
    expect(failedTry!.nextAttemptAt).not.toBeNull();
    expect(failedTry!.attempts.map((a) => a.number)).toContain(1);
    expect(success).toMatchObject({ webhook: { id: webhookId }, event: { id: event.id }, nextAttemptAt: null });
    expect(success.attempts).toEqual([
      { number: 2, succeeded: true, responseStatus: 200 },
      { number: 1, succeeded: false, responseStatus: 500 },
    ]);

    // The other webhook's delivery of the same event is streamed to the unfiltered subscription...
    const ofOther = await all.waitFor((d) => d.event.id === event.id && d.webhook.id === otherId);
    expect(ofOther).toMatchObject({ status: "succeeded", attemptCount: 1 });
    // ...and not to the filtered one: a later update of this webhook arrives, and still none of the other's.
    const sentinel = await publish(apiKey, "agent_created");
    await updates.waitFor((d) => d.event.id === sentinel.id);
    expect(updates.items.filter((d) => d.webhook.id !== webhookId)).toEqual([]);
    expect(updates.errors).toEqual([]);
  });
});
