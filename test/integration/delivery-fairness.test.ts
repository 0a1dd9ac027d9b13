import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { startReceiver, type Receiver } from "../helpers/receiver.ts";
import { until } from "../helpers/verify.ts";

const SLOTS = 4;
const PER_WEBHOOK = 2;
/** As many deliveries to the slow endpoint as there are slots: without the cap they take them all. */
const SLOW_EVENTS = SLOTS;
const HOLD_MS = 3_000;

describeEachMode("one slow endpoint does not hold every worker slot", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let slow: Receiver;
  let fast: Receiver;
  let open = 0;
  let mostOpen = 0;
  const slowAnsweredAt: number[] = [];

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend, {
      WORKER_CONCURRENCY: String(SLOTS),
      WEBHOOK_MAX_IN_FLIGHT: String(PER_WEBHOOK),
      WEBHOOK_TIMEOUT: "5s",
    });
    // answers every request, but only after HOLD_MS, and counts how many it holds at once
    slow = await startReceiver(async (_req, _n, res) => {
      open += 1;
      mostOpen = Math.max(mostOpen, open);
      await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
      open -= 1;
      slowAnsweredAt.push(Date.now());
      res.writeHead(200).end("ok");
    });
    fast = await startReceiver();
  });
  afterAll(async () => {
    await app?.stop();
    await slow?.close();
    await fast?.close();
    await backend?.dispose();
  });

  it(`with ${SLOTS} slots and at most ${PER_WEBHOOK} per webhook, another webhook's delivery goes out while the slow one's backlog waits, and every delivery is attempted once`, async () => {
    const { apiKey } = await app.createAccount();
    const createWebhook = async (url: string, type: string) => {
      const result = await app.gql(
        apiKey,
        `mutation ($url: String!, $type: EventType!) { createWebhook(input: { url: $url, events: [$type] }) { webhook { id } } }`,
        { url, type },
      );
      expect(result.errors).toBeUndefined();
      return result.data.createWebhook.webhook.id as string;
    };
    const slowId = await createWebhook(slow.url, "user_logged_in");
    const fastId = await createWebhook(fast.url, "user_logged_out");
    const publish = async (type: string, user: string) => {
      const result = await app.gql(apiKey, `mutation ($type: EventType!, $data: JSON!) { publishEvent(input: { type: $type, data: $data }) { id } }`, {
        type,
        data: { user_id: user },
      });
      expect(result.errors).toBeUndefined();
    };

    await Promise.all(Array.from({ length: SLOW_EVENTS }, (_, i) => publish("user_logged_in", `slow_${i}`)));
    await slow.waitFor(PER_WEBHOOK);
    await publish("user_logged_out", "fast");
    const [fastRequest] = await fast.waitFor(1);

    // Without the per-webhook cap all four slots would be waiting on the slow endpoint, and the
    // fast delivery could only start once one of those answered.
    expect(slowAnsweredAt.length === 0 || fastRequest!.receivedAt < slowAnsweredAt[0]!).toBe(true);

    type Row = { status: string; attemptCount: number };
    const deliveries = async (webhookId: string): Promise<Row[]> => {
      const result = await app.gql(
        apiKey,
        `query ($id: ID!) { webhook(id: $id) { deliveries(first: 50) { edges { node { status attemptCount } } } } }`,
        { id: webhookId },
      );
      expect(result.errors).toBeUndefined();
      return result.data.webhook.deliveries.edges.map((e: { node: Row }) => e.node);
    };
    let rows: Row[] = [];
    await until(
      async () => {
        rows = await deliveries(slowId);
        return rows.length === SLOW_EVENTS && rows.every((d) => d.status === "succeeded");
      },
      { timeoutMs: 20_000, what: "the slow webhook's deliveries to succeed", describe: () => rows },
    );
    // set-aside tries were never attempts: each delivery went out exactly once, two at a time
    expect(rows.map((d) => d.attemptCount)).toEqual(Array(SLOW_EVENTS).fill(1));
    expect(slow.requests).toHaveLength(SLOW_EVENTS);
    expect(new Set(slow.requests.map((r) => r.headers["webhook-id"])).size).toBe(SLOW_EVENTS);
    expect(mostOpen).toBe(PER_WEBHOOK);
    expect(await deliveries(fastId)).toEqual([{ status: "succeeded", attemptCount: 1 }]);
  });
});
