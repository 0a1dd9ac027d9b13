import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { beforeAll, expect, it } from "vitest";
import type { TestApp } from "../helpers/app.ts";
import { describeEachMode } from "../helpers/backends.ts";
import type { Responder, RoutedReceiver } from "../helpers/receiver.ts";
import { useDeliverySuite } from "../helpers/suite.ts";
import { requestsFor, until, waitForRequests } from "../helpers/verify.ts";

const CREATE = `mutation ($url: String!) {
  createWebhook(input: { url: $url, events: [agent_created] }) { webhook { id } } }`;
const PUBLISH = `mutation {
  publishEvent(input: { type: agent_created, data: { agent_id: "a", name: "n", created_by: "u" } }) { id } }`;
const DELIVERIES = `query ($eventId: ID!) { deliveries(eventId: $eventId) { edges { node {
  id status attemptCount attempts { number responseStatus succeeded error durationMs responseBody } } } } }`;
const WEBHOOK = `query ($id: ID!) { webhook(id: $id) { status disabledReason } }`;

interface Attempt {
  number: number;
  responseStatus: number | null;
  succeeded: boolean;
  error: string | null;
  durationMs: number;
  responseBody: string | null;
}
interface Delivery {
  id: string;
  status: string;
  attemptCount: number;
  attempts: Attempt[];
}

const TIMEOUT_MS = 500;

describeEachMode("failed attempts", (mode) => {
  const suite = useDeliverySuite(mode, { WEBHOOK_TIMEOUT: `${TIMEOUT_MS}ms` });
  let app: TestApp;
  let receiver: RoutedReceiver;
  let routes: Map<string, Responder>;

  beforeAll(() => {
    ({ app, receiver, routes } = suite);
  });

  /** A new account whose one webhook points at `url`; publishes one event; returns what is needed to follow it. */
  async function publishTo(url: string) {
    const { apiKey } = await app.createAccount();
    const created = await app.gql(apiKey, CREATE, { url });
    expect(created.errors).toBeUndefined();
    const published = await app.gql(apiKey, PUBLISH);
    expect(published.errors).toBeUndefined();
    return { apiKey, webhookId: created.data.createWebhook.webhook.id as string, eventId: published.data.publishEvent.id as string };
  }

  function waitForDelivery(apiKey: string, eventId: string, done: (d: Delivery) => boolean): Promise<Delivery> {
    let last: Delivery | undefined;
    return until(
      async () => {
        const result = await app.gql(apiKey, DELIVERIES, { eventId });
        expect(result.errors).toBeUndefined();
        last = result.data.deliveries.edges[0]?.node;
        return last && done(last) ? last : undefined;
      },
      { what: `the delivery of ${eventId}`, describe: () => last },
    );
  }

  /** The first attempt, as logged. */
  const firstAttempt = (d: Delivery) => d.attempts[d.attempts.length - 1]!;

  it("a receiver that never answers: the attempt times out (no status) and is retried", async () => {
    routes.set("/hook/silent", () => {
      // never answers
    });
    const t = await publishTo(`${receiver.url}/silent`);
    const delivery = await waitForDelivery(t.apiKey, t.eventId, (d) => d.attempts.length >= 2);
    const attempt = firstAttempt(delivery);
    expect(attempt).toMatchObject({ number: 1, responseStatus: null, responseBody: null, succeeded: false });
    expect(attempt.error).toMatch(/timed out/);
    expect(attempt.durationMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(attempt.durationMs).toBeLessThan(TIMEOUT_MS + 1_500);
    expect(requestsFor(receiver.requests, t.eventId).length).toBeGreaterThanOrEqual(2);
  });

  it("nothing listening on the port: connection refused (no status)", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const t = await publishTo(`http://127.0.0.1:${port}/hook`);
    const delivery = await waitForDelivery(t.apiKey, t.eventId, (d) => d.attempts.length >= 1);
    expect(firstAttempt(delivery)).toMatchObject({
      number: 1,
      responseStatus: null,
      responseBody: null,
      succeeded: false,
      error: "connection refused",
    });
  });

  it("a receiver that drops the connection: connection reset (no status)", async () => {
    routes.set("/hook/reset", (_req, _n, res) => void res.socket?.destroy());
    const t = await publishTo(`${receiver.url}/reset`);
    const delivery = await waitForDelivery(t.apiKey, t.eventId, (d) => d.attempts.length >= 1);
    const attempt = firstAttempt(delivery);
    expect(attempt).toMatchObject({ number: 1, responseStatus: null, succeeded: false });
    expect(attempt.error).toMatch(/reset|closed/i);
  });

  it("a 302 is a failed attempt and is never followed", async () => {
    routes.set("/hook/moved", (_req, _n, res) =>
      void res.writeHead(302, { location: `${receiver.url}/moved-target` }).end("moved"),
    );
    const t = await publishTo(`${receiver.url}/moved`);
    // Every scheduled attempt gets the 302; the delivery fails and the webhook is disabled.
    const delivery = await waitForDelivery(t.apiKey, t.eventId, (d) => d.status !== "pending");
    expect(delivery).toMatchObject({ status: "failed", attemptCount: 4 });
    for (const attempt of delivery.attempts) {
      expect(attempt).toMatchObject({ responseStatus: 302, succeeded: false });
      expect(attempt.error).toEqual(expect.stringMatching(/\S/));
    }
    const atMoved = requestsFor(receiver.requests, t.eventId);
    expect(atMoved.map((r) => r.path)).toEqual(Array(4).fill("/hook/moved"));
    expect(receiver.requests.filter((r) => r.path === "/hook/moved-target")).toHaveLength(0);
    const webhook = await app.gql(t.apiKey, WEBHOOK, { id: t.webhookId });
    expect(webhook.data.webhook.status).toBe("disabled");
  });

  it("a 10 KB answer is logged as its first 4 KiB at most", async () => {
    const big = Array.from({ length: 10 * 1024 }, (_, i) => String.fromCharCode(97 + (i % 26))).join("");
    routes.set("/hook/chatty", (_req, _n, res) => void res.writeHead(200, { "content-type": "text/plain" }).end(big));
    routes.set("/hook/chatty-fail", (_req, _n, res) => void res.writeHead(500, { "content-type": "text/plain" }).end(big));

    const ok = await publishTo(`${receiver.url}/chatty`);
    const delivered = await waitForDelivery(ok.apiKey, ok.eventId, (d) => d.status === "succeeded");
    const body = delivered.attempts[0]!.responseBody!;
    expect(body.length).toBeGreaterThan(0);
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(4096);
    expect(big.startsWith(body)).toBe(true);

    const failing = await publishTo(`${receiver.url}/chatty-fail`);
    await waitForRequests(receiver.requests, failing.eventId, 1);
    const failed = await waitForDelivery(failing.apiKey, failing.eventId, (d) => d.attempts.length >= 1);
    const failedBody = firstAttempt(failed).responseBody!;
    expect(firstAttempt(failed)).toMatchObject({ responseStatus: 500, succeeded: false });
    expect(Buffer.byteLength(failedBody)).toBeLessThanOrEqual(4096);
    expect(failedBody.length).toBeGreaterThan(0);
    expect(big.startsWith(failedBody)).toBe(true);
  });
});
