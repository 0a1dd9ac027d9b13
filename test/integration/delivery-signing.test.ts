import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { startReceiver, type ReceivedRequest, type Receiver } from "../helpers/receiver.ts";
import {
  randomSecret,
  standardSignatures,
  standardWebhooksError,
  tampered,
  until,
  verifyBoth,
  verifyLikeDocs,
  verifyStandardWebhooks,
  waitForRequests,
  type Verdict,
} from "../helpers/verify.ts";

const CREATE = `mutation ($url: String!) {
  createWebhook(input: { url: $url, events: [agent_created] }) { webhook { id } secret } }`;
const ROTATE = `mutation ($id: ID!) { rotateWebhookSecret(id: $id) { webhook { id } secret } }`;
const PUBLISH = `mutation ($data: JSON!) {
  publishEvent(input: { type: agent_created, data: $data }) { id type timestamp data } }`;
const DELIVERY = `query ($eventId: ID!, $webhookId: ID!) { deliveries(eventId: $eventId, webhookId: $webhookId) { edges { node {
  status attemptCount attempts { number responseStatus succeeded } } } } }`;

/** Nested objects and arrays, unicode beyond the BMP, escapes, and numbers of every shape. */
const DATA = {
  agent_id: "agent_12345",
  name: "Spawn Assistant — «ünïcødé» 日本語 🎉",
  created_by: "user_67890",
  profile: {
    tags: ["a", "ß", { deep: [1, 2.5, -3, 0, { deeper: "ø" }] }],
    score: 0.30000000000000004,
    big: 9007199254740991,
    tiny: 1e-7,
    negative: -42,
    flag: true,
    nothing: null,
  },
  escapes: 'quote " backslash \\ newline \n tab \t separator \u2028 </script>',
};

interface Published {
  id: string;
  type: string;
  timestamp: number;
  data: Record<string, unknown>;
}

describeEachMode("webhook signing", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let receiver: Receiver;
  let apiKey: string;
  /** Per webhook (each has its own path on the receiver): the secret the user configured on their side. */
  const configured = new Map<string, string>();
  /** Paths whose next request is answered 500 (to see a retry). */
  const failNext = new Set<string>();
  /** Paths whose next request is held 1.5 s, then answered 500. */
  const slowNext = new Set<string>();
  /** The receiver's verdict on each request, in arrival order. */
  const verdicts: Verdict[] = [];

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend);
    ({ apiKey } = await app.createAccount("Signing"));
    // A receiver that checks every request twice and answers 401 as the documentation says.
    receiver = await startReceiver((request, n, res) => {
      const verdict = verifyBoth(request, configured.get(request.path) ?? "");
      verdicts[n - 1] = verdict;
      if (!verdict.docs || !verdict.standard) {
        res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ error: "Invalid signature" }));
      } else if (slowNext.delete(request.path)) {
        return new Promise<void>((resolve) => setTimeout(resolve, 1_500)).then(() => void res.writeHead(500).end("slow"));
      } else if (failNext.delete(request.path)) {
        res.writeHead(500).end("try again");
      } else {
        res.writeHead(200).end("ok");
      }
    });
  });
  afterAll(async () => {
    await app?.stop();
    await receiver?.close();
    await backend?.dispose();
  });

  async function createWebhook(name: string): Promise<{ id: string; secret: string; path: string }> {
    const path = `/hook/${name}`;
    const created = await app.gql(apiKey, CREATE, { url: `${receiver.url}/${name}` });
    expect(created.errors).toBeUndefined();
    const secret = created.data.createWebhook.secret as string;
    configured.set(path, secret);
    return { id: created.data.createWebhook.webhook.id, secret, path };
  }

  async function publish(data: Record<string, unknown> = DATA): Promise<Published> {
    const published = await app.gql(apiKey, PUBLISH, { data });
    expect(published.errors).toBeUndefined();
    return published.data.publishEvent as Published;
  }

  /** Waits for `count` requests of one event at one webhook's path. */
  function requestsAt(path: string, eventId: string, count = 1): Promise<ReceivedRequest[]> {
    return waitForRequests(() => receiver.requests.filter((request) => request.path === path), eventId, count);
  }

  function verdictOf(request: ReceivedRequest): Verdict {
    return verdicts[receiver.requests.indexOf(request)]!;
  }

  /** The delivery of one event to one webhook (other webhooks of the account may take the event too). */
  async function deliveryOf(eventId: string, webhookId: string) {
    const log = await app.gql(apiKey, DELIVERY, { eventId, webhookId });
    expect(log.errors).toBeUndefined();
    return log.data.deliveries.edges[0]?.node;
  }

  describe("one secret", () => {
    let hook: { id: string; secret: string; path: string };
    let event: Published;
    let requests: ReceivedRequest[];

    beforeAll(async () => {
      hook = await createWebhook("signing");
      failNext.add(hook.path);
      event = await publish();
      requests = await requestsAt(hook.path, event.id, 2);
    });

    it("the secret is whsec_ + base64 of 32 bytes", () => {
      expect(hook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(Buffer.from(hook.secret.slice(6), "base64")).toHaveLength(32);
    });

    it("every request, the retry included, verifies with the documentation's snippet and with standardwebhooks", () => {
      expect(requests).toHaveLength(2);
      for (const request of requests) {
        expect(verdictOf(request)).toEqual({ docs: true, standard: true });
        expect(standardWebhooksError(request, hook.secret)).toBeUndefined();
      }
    });

    it("sends the exact headers: content type, user agent, webhook-id = event id on every try, webhook-timestamp = now", () => {
      for (const request of requests) {
        expect(request.method).toBe("POST");
        expect(request.headers["content-type"]).toBe("application/json");
        expect(request.headers["user-agent"]).toBe("Spawn-Webhooks/1.0");
        expect(request.headers["webhook-id"]).toBe(event.id);
        expect(request.headers["spawn-signature"]).toMatch(/^sha256=[0-9a-f]{64}$/);
        expect(standardSignatures(request.headers)).toHaveLength(1);
        expect(standardSignatures(request.headers)[0]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
        // Unix seconds of this attempt: signed just before sending, so not after arrival (and not long before).
        const timestamp = request.headers["webhook-timestamp"];
        expect(timestamp).toMatch(/^\d{10}$/);
        const arrived = Math.floor(request.receivedAt / 1000);
        expect(Number(timestamp)).toBeLessThanOrEqual(arrived);
        expect(Number(timestamp)).toBeGreaterThanOrEqual(arrived - 2);
      }
      expect(Number(requests[1]!.headers["webhook-timestamp"])).toBeGreaterThanOrEqual(
        Number(requests[0]!.headers["webhook-timestamp"]),
      );
    });

    it("sends the body {event, timestamp, data}: those keys, in that order, no whitespace, data intact", () => {
      for (const request of requests) {
        const parsed = JSON.parse(request.body) as Record<string, unknown>;
        expect(Object.keys(parsed)).toEqual(["event", "timestamp", "data"]);
        expect(parsed.event).toBe("agent_created");
        expect(parsed.timestamp).toBe(event.timestamp);
        expect(parsed.data).toEqual(DATA);
        // No whitespace anywhere: re-serialising gives the same bytes (what the docs' check relies on).
        expect(request.body).toBe(JSON.stringify(parsed));
        expect(request.body).toBe(JSON.stringify({ event: event.type, timestamp: event.timestamp, data: event.data }));
        // The data as published, keys in the publisher's order.
        expect(request.body).toBe(JSON.stringify({ event: "agent_created", timestamp: event.timestamp, data: DATA }));
        expect(Buffer.byteLength(request.body)).toBe(Number(request.headers["content-length"]));
      }
      expect(requests[1]!.body).toBe(requests[0]!.body);
      // The payload's timestamp is the event's (unix seconds), the same on every try.
      expect(Math.abs(event.timestamp - Math.floor(requests[0]!.receivedAt / 1000))).toBeLessThanOrEqual(2);
    });

    it("webhook-timestamp is the time of each attempt, while the payload keeps the event's timestamp", async () => {
      // The first try is held 1.5 s and fails: the retry is signed at least a second after the event.
      const slow = await createWebhook("signing-slow");
      slowNext.add(slow.path);
      const later = await publish({ agent_id: "a3", name: "n", created_by: "u" });
      const [held, retried] = await requestsAt(slow.path, later.id, 2);
      for (const request of [held!, retried!]) {
        expect(verdictOf(request)).toEqual({ docs: true, standard: true });
        expect(JSON.parse(request.body).timestamp).toBe(later.timestamp);
      }
      expect(Number(retried!.headers["webhook-timestamp"])).toBeGreaterThanOrEqual(later.timestamp + 1);
      expect(Number(retried!.headers["webhook-timestamp"])).toBeGreaterThan(Number(held!.headers["webhook-timestamp"]));
    });

    it("logs the failed try and the success", async () => {
      const node = await until(async () => {
        const found = await deliveryOf(event.id, hook.id);
        return found?.status === "succeeded" ? found : undefined;
      });
      expect(node).toMatchObject({
        attemptCount: 2,
        attempts: [
          { number: 2, responseStatus: 200, succeeded: true },
          { number: 1, responseStatus: 500, succeeded: false },
        ],
      });
    });

    it("a tampered body is rejected by both checks", () => {
      const changed = tampered(requests[0]!);
      expect(changed.body).not.toBe(requests[0]!.body);
      expect(verifyLikeDocs(changed, hook.secret)).toBe(false);
      expect(verifyStandardWebhooks(changed, hook.secret)).toBe(false);
      // Changed headers are caught too: another webhook-id or timestamp breaks the Standard Webhooks signature.
      const original = requests[0]!;
      const otherId = { ...original, headers: { ...original.headers, "webhook-id": "evt_someone_else" } };
      expect(verifyStandardWebhooks(otherId, hook.secret)).toBe(false);
      const ts = Number(original.headers["webhook-timestamp"]);
      const otherTs = { ...original, headers: { ...original.headers, "webhook-timestamp": String(ts - 1) } };
      expect(verifyStandardWebhooks(otherTs, hook.secret)).toBe(false);
    });

    it("a wrong secret is rejected by both checks", () => {
      const wrong = randomSecret();
      expect(verifyLikeDocs(requests[0]!, wrong)).toBe(false);
      expect(verifyStandardWebhooks(requests[0]!, wrong)).toBe(false);
      // standardwebhooks takes the secret with or without "whsec_"; the documented check keys with the whole string.
      expect(verifyStandardWebhooks(requests[0]!, hook.secret.slice("whsec_".length))).toBe(true);
      expect(verifyLikeDocs(requests[0]!, hook.secret.slice("whsec_".length))).toBe(false);
    });

    it("a receiver with the wrong secret answers 401: the attempt is logged as failed and retried", async () => {
      configured.set(hook.path, randomSecret());
      try {
        const second = await publish({ agent_id: "a2", name: "n", created_by: "u" });
        const [first] = await requestsAt(hook.path, second.id, 1);
        expect(verdictOf(first!)).toEqual({ docs: false, standard: false });
        const node = await until(async () => {
          const found = await deliveryOf(second.id, hook.id);
          return found && found.attempts.length >= 1 ? found : undefined;
        });
        expect(node.attempts.at(-1)).toMatchObject({ number: 1, responseStatus: 401, succeeded: false });
        // The user fixes their secret: the next try goes through.
        configured.set(hook.path, hook.secret);
        await until(async () => (await deliveryOf(second.id, hook.id))?.status === "succeeded");
      } finally {
        configured.set(hook.path, hook.secret);
      }
    });
  });

  describe("secret rotation", () => {
    let hook: { id: string; secret: string; path: string };
    let rotated: string;

    beforeAll(async () => {
      hook = await createWebhook("rotation");
      const result = await app.gql(apiKey, ROTATE, { id: hook.id });
      expect(result.errors).toBeUndefined();
      rotated = result.data.rotateWebhookSecret.secret;
      expect(rotated).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(rotated).not.toBe(hook.secret);
      // The user switched the receiver to the new secret.
      configured.set(hook.path, rotated);
    });

    it("spawn-signature uses the new secret only; webhook-signature carries both and verifies with either", async () => {
      const event = await publish();
      const [request] = await requestsAt(hook.path, event.id, 1);
      expect(verdictOf(request!)).toEqual({ docs: true, standard: true });

      expect(verifyLikeDocs(request!, rotated)).toBe(true);
      expect(verifyLikeDocs(request!, hook.secret)).toBe(false);

      const signatures = standardSignatures(request!.headers);
      expect(signatures).toHaveLength(2);
      for (const signature of signatures) expect(signature).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
      expect(new Set(signatures).size).toBe(2);
      expect(standardWebhooksError(request!, rotated)).toBeUndefined();
      expect(standardWebhooksError(request!, hook.secret)).toBeUndefined();
      expect(verifyStandardWebhooks(request!, randomSecret())).toBe(false);
      expect(verifyStandardWebhooks(tampered(request!), hook.secret)).toBe(false);
      expect(verifyStandardWebhooks(tampered(request!), rotated)).toBe(false);
    });

    it("once the previous secret has expired, only the new signature is sent", async () => {
      await app.handle.app.db.webhook.update({
        where: { id: hook.id },
        data: { previousSecretExpiresAt: new Date(Date.now() - 1_000) },
      });
      const event = await publish();
      const [request] = await requestsAt(hook.path, event.id, 1);
      expect(verdictOf(request!)).toEqual({ docs: true, standard: true });
      expect(standardSignatures(request!.headers)).toHaveLength(1);
      expect(verifyStandardWebhooks(request!, rotated)).toBe(true);
      expect(verifyStandardWebhooks(request!, hook.secret)).toBe(false);
      expect(verifyLikeDocs(request!, rotated)).toBe(true);
      expect(verifyLikeDocs(request!, hook.secret)).toBe(false);
    });
  });
});
