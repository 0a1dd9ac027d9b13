import type { ServerResponse } from "node:http";
import { beforeAll, describe, expect, it } from "vitest";
import type { TestApp } from "../helpers/app.ts";
import { describeEachMode } from "../helpers/backends.ts";
import type { Responder, RoutedReceiver } from "../helpers/receiver.ts";
import { useDeliverySuite } from "../helpers/suite.ts";
import { requestsFor, until, waitForRequests } from "../helpers/verify.ts";

const CREATE = `mutation ($url: String!) {
  createWebhook(input: { url: $url, events: [agent_created] }) { webhook { id } secret } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateWebhookInput!) {
  updateWebhook(id: $id, input: $input) { id status disabledReason } }`;
const WEBHOOK = `query ($id: ID!) { webhook(id: $id) { id status disabledReason
  deliveries(first: 100) { edges { node { id status event { id } } } } } }`;
const PUBLISH = `mutation ($agent: String!) {
  publishEvent(input: { type: agent_created, data: { agent_id: $agent, name: "n", created_by: "u" } }) { id } }`;
const DELIVERIES = `query ($eventId: ID!) { deliveries(eventId: $eventId) { edges { node {
  id status attemptCount lastAttemptAt nextAttemptAt webhook { id } event { id }
  attempts { number startedAt responseStatus succeeded error durationMs responseBody } } } } }`;
const RETRY = `mutation ($id: ID!) { retryDelivery(id: $id) { id status attemptCount nextAttemptAt } }`;

interface Attempt {
  number: number;
  startedAt: string;
  responseStatus: number | null;
  succeeded: boolean;
  error: string | null;
  durationMs: number;
  responseBody: string | null;
}
interface Delivery {
  id: string;
  status: "pending" | "succeeded" | "failed";
  attemptCount: number;
  lastAttemptAt: string | null;
  nextAttemptAt: string | null;
  webhook: { id: string };
  event: { id: string };
  attempts: Attempt[];
}

const answer = (status: number, body: string) => (_req: unknown, _n: number, res: ServerResponse) =>
  void res.writeHead(status, { "content-type": "text/plain" }).end(body);

describeEachMode("delivery retries", (mode) => {
  // Attempts held by the receiver below stay well inside the timeout.
  const suite = useDeliverySuite(mode, { WEBHOOK_TIMEOUT: "5s" });
  let app: TestApp;
  let receiver: RoutedReceiver;
  let routes: Map<string, Responder>;
  let routeCount = 0;

  beforeAll(() => {
    ({ app, receiver, routes } = suite);
  });

  /** A new account with one webhook (agent_created) whose receiver path answers with `responder`. */
  async function setup(responder: Responder) {
    const { apiKey, accountId } = await app.createAccount();
    const path = `/hook/r${++routeCount}`;
    routes.set(path, responder);
    const created = await app.gql(apiKey, CREATE, { url: `http://127.0.0.1:${receiver.port}${path}` });
    expect(created.errors).toBeUndefined();
    return { apiKey, accountId, path, webhookId: created.data.createWebhook.webhook.id as string };
  }

  async function publish(apiKey: string, agent = "agent_1"): Promise<string> {
    const published = await app.gql(apiKey, PUBLISH, { agent });
    expect(published.errors).toBeUndefined();
    return published.data.publishEvent.id;
  }

  async function deliveryOf(apiKey: string, eventId: string): Promise<Delivery | undefined> {
    const result = await app.gql(apiKey, DELIVERIES, { eventId });
    expect(result.errors).toBeUndefined();
    return result.data.deliveries.edges[0]?.node;
  }

  function waitForDelivery(apiKey: string, eventId: string, done: (d: Delivery) => boolean, timeoutMs = 15_000) {
    let last: Delivery | undefined;
    return until(
      async () => {
        last = await deliveryOf(apiKey, eventId);
        return last && done(last) ? last : undefined;
      },
      { timeoutMs, what: `the delivery of ${eventId}`, describe: () => last },
    );
  }

  async function webhookOf(apiKey: string, id: string) {
    const result = await app.gql(apiKey, WEBHOOK, { id });
    expect(result.errors).toBeUndefined();
    return result.data.webhook as {
      id: string;
      status: string;
      disabledReason: string | null;
      deliveries: { edges: Array<{ node: { id: string; status: string; event: { id: string } } }> };
    };
  }

  const requestsAt = (path: string) => () => receiver.requests.filter((r) => r.path === path);

  it("failing twice then answering 200: three attempts, logged newest first, delivery succeeded", async () => {
    let mine = 0;
    const t = await setup((_req, _n, res) => {
      mine += 1;
      if (mine <= 2) res.writeHead(500).end(`failure ${mine}`);
      else res.writeHead(200).end("thanks");
    });
    const eventId = await publish(t.apiKey);
    const delivery = await waitForDelivery(t.apiKey, eventId, (d) => d.status !== "pending");

    expect(delivery).toMatchObject({ status: "succeeded", attemptCount: 3, webhook: { id: t.webhookId }, event: { id: eventId } });
    expect(delivery.nextAttemptAt).toBeNull();
    expect(delivery.attempts.map((a) => [a.number, a.responseStatus, a.succeeded])).toEqual([
      [3, 200, true],
      [2, 500, false],
      [1, 500, false],
    ]);
    expect(delivery.attempts[0]).toMatchObject({ error: null, responseBody: "thanks" });
    expect(delivery.attempts[1]).toMatchObject({ responseBody: "failure 2" });
    expect(delivery.attempts[2]).toMatchObject({ responseBody: "failure 1" });
    for (const attempt of delivery.attempts.slice(1)) expect(attempt.error).toEqual(expect.stringContaining("500"));
    for (const attempt of delivery.attempts) {
      expect(Number.isInteger(attempt.durationMs)).toBe(true);
      expect(attempt.durationMs).toBeGreaterThanOrEqual(0);
    }
    expect(delivery.lastAttemptAt).toBe(delivery.attempts[0]!.startedAt);

    const requests = requestsFor(requestsAt(t.path)(), eventId);
    expect(requests).toHaveLength(3);
    // The schedule (100ms, 200ms) separates the tries.
    expect(requests[1]!.receivedAt - requests[0]!.receivedAt).toBeGreaterThanOrEqual(90);
    expect(requests[2]!.receivedAt - requests[1]!.receivedAt).toBeGreaterThanOrEqual(190);
  });

  it("always 500: four attempts, delivery failed, webhook disabled; it gets nothing new, and what was pending goes out once it is active", async () => {
    let healthy = false;
    let firstEventId = "";
    let release: (() => void) | undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const t = await setup((request, _n, res) => {
      if (healthy) return void res.writeHead(200).end("ok");
      // The second event's first try is held until the webhook has been disabled, then fails too.
      if (request.headers["webhook-id"] !== firstEventId) {
        return released.then(() => void res.writeHead(healthy ? 200 : 503).end("busy"));
      }
      res.writeHead(500).end("broken");
    });

    firstEventId = await publish(t.apiKey, "first");
    const secondEventId = await publish(t.apiKey, "second");
    // Both deliveries were created while the webhook was active; the second one is in flight.
    await waitForRequests(requestsAt(t.path), secondEventId, 1);

    const failed = await waitForDelivery(t.apiKey, firstEventId, (d) => d.status !== "pending");
    expect(failed.status).toBe("failed");
    expect(failed.attemptCount).toBe(4);
    expect(failed.nextAttemptAt).toBeNull();
    expect(failed.attempts.map((a) => [a.number, a.responseStatus, a.succeeded])).toEqual([
      [4, 500, false],
      [3, 500, false],
      [2, 500, false],
      [1, 500, false],
    ]);
    expect(requestsFor(requestsAt(t.path)(), firstEventId)).toHaveLength(4);

    const disabled = await webhookOf(t.apiKey, t.webhookId);
    expect(disabled.status).toBe("disabled");
    expect(disabled.disabledReason).toEqual(expect.stringMatching(/\S/));

    // The held try now fails: the second delivery is due again, but its webhook is disabled.
    release!();
    const waiting = await waitForDelivery(t.apiKey, secondEventId, (d) => d.attemptCount === 1);
    expect(waiting.status).toBe("pending");
    expect(waiting.attempts.map((a) => [a.number, a.responseStatus])).toEqual([[1, 503]]);
    // Past its due time and a couple of sweeps later, it has still not been sent.
    const due = new Date(waiting.nextAttemptAt!).getTime();
    await until(() => Date.now() > due + 1_200, { timeoutMs: 5_000 });
    expect(await deliveryOf(t.apiKey, secondEventId)).toMatchObject({ status: "pending", attemptCount: 1 });
    expect(requestsFor(requestsAt(t.path)(), secondEventId)).toHaveLength(1);

    // While disabled, a new event creates no delivery for this webhook.
    const thirdEventId = await publish(t.apiKey, "third");
    expect(await deliveryOf(t.apiKey, thirdEventId)).toBeUndefined();
    const stillTwo = await webhookOf(t.apiKey, t.webhookId);
    expect(stillTwo.deliveries.edges.map((e) => e.node.event.id).sort()).toEqual([firstEventId, secondEventId].sort());

    // The user fixes the receiver and re-enables the webhook: the waiting delivery goes out.
    healthy = true;
    const reactivated = await app.gql(t.apiKey, UPDATE, { id: t.webhookId, input: { status: "active" } });
    expect(reactivated.errors).toBeUndefined();
    expect(reactivated.data.updateWebhook).toMatchObject({ status: "active", disabledReason: null });

    const sent = await waitForDelivery(t.apiKey, secondEventId, (d) => d.status !== "pending");
    expect(sent).toMatchObject({ status: "succeeded", attemptCount: 2 });
    expect(sent.attempts.map((a) => [a.number, a.responseStatus, a.succeeded])).toEqual([
      [2, 200, true],
      [1, 503, false],
    ]);
    expect(requestsFor(requestsAt(t.path)(), secondEventId)).toHaveLength(2);
    // The failed delivery stays failed (only retryDelivery sends it again); the third event never had one.
    expect(await deliveryOf(t.apiKey, firstEventId)).toMatchObject({ status: "failed", attemptCount: 4 });
    expect(await deliveryOf(t.apiKey, thirdEventId)).toBeUndefined();
    expect(requestsFor(requestsAt(t.path)(), thirdEventId)).toHaveLength(0);
  });

  describe("retryDelivery", () => {
    let healthy = false;
    let t: Awaited<ReturnType<typeof setup>>;
    let eventId: string;
    let failed: Delivery;

    beforeAll(async () => {
      t = await setup((_req, _n, res) => void res.writeHead(healthy ? 200 : 500).end(healthy ? "ok" : "no"));
      eventId = await publish(t.apiKey);
      failed = await waitForDelivery(t.apiKey, eventId, (d) => d.status === "failed");
      expect(failed.attemptCount).toBe(4);
      expect((await webhookOf(t.apiKey, t.webhookId)).status).toBe("disabled");
    });

    it("on another account's delivery: NOT_FOUND, and nothing changes", async () => {
      const other = await app.createAccount("Other");
      const foreign = await app.gql(other.apiKey, RETRY, { id: failed.id });
      expect(foreign.data?.retryDelivery ?? null).toBeNull();
      expect(JSON.stringify(foreign)).not.toContain(eventId);
      expect(await deliveryOf(t.apiKey, eventId)).toMatchObject({ status: "failed", attemptCount: 4 });
      expect(foreign.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    });

    it("on a failed delivery: it goes out again and ends succeeded", async () => {
      healthy = true;
      const reactivated = await app.gql(t.apiKey, UPDATE, { id: t.webhookId, input: { status: "active" } });
      expect(reactivated.errors).toBeUndefined();
      const retried = await app.gql(t.apiKey, RETRY, { id: failed.id });
      expect(retried.errors).toBeUndefined();
      expect(retried.data.retryDelivery).toMatchObject({ id: failed.id, status: "pending", attemptCount: 4 });

      const succeeded = await waitForDelivery(t.apiKey, eventId, (d) => d.status !== "pending");
      expect(succeeded.status).toBe("succeeded");
      expect(succeeded.attemptCount).toBe(5);
      expect(succeeded.attempts[0]).toMatchObject({ number: 5, responseStatus: 200, succeeded: true });
      const requests = requestsFor(requestsAt(t.path)(), eventId);
      expect(requests).toHaveLength(5);
      expect(new Set(requests.map((r) => r.body)).size).toBe(1);
      expect((await webhookOf(t.apiKey, t.webhookId)).status).toBe("active");
    });

    it("on a succeeded delivery: BAD_USER_INPUT, and nothing is sent", async () => {
      const ok = await setup((_req, _n, res) => void res.writeHead(200).end("ok"));
      const okEvent = await publish(ok.apiKey);
      const delivered = await waitForDelivery(ok.apiKey, okEvent, (d) => d.status === "succeeded");
      const again = await app.gql(ok.apiKey, RETRY, { id: delivered.id });
      expect(again.data?.retryDelivery ?? null).toBeNull();
      expect(await deliveryOf(ok.apiKey, okEvent)).toMatchObject({ status: "succeeded", attemptCount: 1 });
      expect(again.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    });

    it("on an unknown id: NOT_FOUND", async () => {
      const missing = await app.gql(t.apiKey, RETRY, { id: "dlv_00000000000000000000000000" });
      expect(missing.data?.retryDelivery ?? null).toBeNull();
      expect(missing.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    });
  });
});
