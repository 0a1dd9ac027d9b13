import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LookupAll } from "../../src/delivery/ssrf.ts";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { startReceiver, type Receiver } from "../helpers/receiver.ts";
import { untilValue as until } from "../helpers/verify.ts";

/**
 * CONTRACT §7: webhook URLs that are not http(s), too long, carry user info, or name / resolve to a
 * non-public address are refused at registration (GraphQL and REST) and again at every attempt,
 * against the address actually connected to. No traffic ever leaves loopback here: the only
 * public address (93.184.216.34) is what a stand-in resolver answers at registration; at connect
 * time the same name answers 127.0.0.1, which must be blocked before any socket opens.
 */

const CREATE = `mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id url } secret } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { id url } }`;
const PUBLISH = `mutation ($input: PublishEventInput!) { publishEvent(input: $input) { id } }`;
const LOG = `query ($webhookId: ID!) { deliveries(webhookId: $webhookId, first: 10) { edges { node {
  id status attemptCount attempts { number responseStatus responseBody error succeeded } } } } }`;

const HOSTILE_URLS: string[] = [
  "file:///etc/passwd",
  "javascript:alert(1)",
  "ftp://example.com/",
  "https://user:pass@example.com/",
  `https://example.com/${"a".repeat(2049 - "https://example.com/".length)}`,
  "http://localhost/",
  "http://localhost:4000/x",
  "http://[::1]/",
  "http://[::ffff:7f00:1]/",
  "http://[::ffff:127.0.0.1]/",
  "http://[64:ff9b::7f00:1]/",
  "http://0.0.0.0/",
  "http://100.64.0.1/",
  "http://169.254.169.254/latest/meta-data/",
  "http://[::ffff:169.254.169.254]/",
  "http://[fe80::1]/",
  "http://[fc00::1]/",
  "http://224.0.0.1/",
  "http://255.255.255.255/",
  "http://10.0.0.1/",
  "http://172.16.0.1/",
  "http://192.168.1.1/",
  "http://192.0.2.1/",
  "http://[2001:db8::1]/",
  "http://127.1/",
  "http://0x7f000001/",
  "http://2130706433/",
  "http://017700000001/",
  "http://0177.0.0.1/",
];

interface Attempt {
  number: number;
  responseStatus: number | null;
  responseBody: string | null;
  error: string | null;
  succeeded: boolean;
}
interface LoggedDelivery {
  id: string;
  status: string;
  attemptCount: number;
  attempts: Attempt[];
}

describeEachMode("SSRF guard", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let receiver: Receiver;
  /** An account and a loopback webhook registered while private networks were allowed. */
  let early: { apiKey: string; accountId: string; webhookId: string };

  async function restCreate(key: string, url: string) {
    const response = await fetch(`${app.baseUrl}/api/v1/webhooks`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ url, events: ["agent_created"] }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function restPatch(key: string, id: string, url: string) {
    const response = await fetch(`${app.baseUrl}/api/v1/webhooks/${id}`, {
      method: "PATCH",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ url }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function deliveryLog(key: string, webhookId: string): Promise<LoggedDelivery[]> {
    const result = await app.gql(key, LOG, { webhookId });
    expect(result.errors).toBeUndefined();
    return result.data.deliveries.edges.map((e: { node: LoggedDelivery }) => e.node);
  }

  const agentCreated = (n: number) => ({ type: "agent_created", data: { agent_id: `agent_${n}`, name: "A", created_by: "user_1" } });

  beforeAll(async () => {
    backend = await createBackend(mode);
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await app?.stop();
    await receiver?.close();
    await backend?.dispose();
  });

  describe("with WEBHOOK_ALLOW_PRIVATE_NETWORKS=true (the test default)", () => {
    beforeAll(async () => {
      app = await startTestApp(backend);
    });
    afterAll(async () => {
      await app.stop();
    });

    it("a loopback receiver is accepted and delivered to end to end", async () => {
      const { apiKey, accountId } = await app.createAccount("Loopback");
      const created = await app.gql(apiKey, CREATE, { input: { url: receiver.url, events: ["agent_created"] } });
      expect(created.errors).toBeUndefined();
      const webhookId = created.data.createWebhook.webhook.id;
      early = { apiKey, accountId, webhookId };

      const published = await app.gql(apiKey, PUBLISH, { input: agentCreated(1) });
      expect(published.errors).toBeUndefined();
      const [request] = await receiver.waitFor(1);
      expect(JSON.parse(request!.body).data.agent_id).toBe("agent_1");
      const [delivery] = await until(
        () => deliveryLog(apiKey, webhookId),
        (log) => log[0]?.status === "succeeded",
      );
      expect(delivery!.attempts).toEqual([expect.objectContaining({ number: 1, responseStatus: 200, succeeded: true })]);
    });
  });

  describe("with WEBHOOK_ALLOW_PRIVATE_NETWORKS=false", () => {
    /** Every name the app asked the stand-in resolver about, in order. */
    const asked: string[] = [];
    let rebindCalls = 0;
    const lookup: LookupAll = async (hostname) => {
      asked.push(hostname);
      switch (hostname) {
        case "rebind.test":
          rebindCalls += 1;
          return rebindCalls === 1 ? [{ address: "93.184.216.34", family: 4 }] : [{ address: "127.0.0.1", family: 4 }];
        case "private.test":
          return [{ address: "10.0.0.5", family: 4 }];
        case "mixed.test":
          return [
            { address: "93.184.216.34", family: 4 },
            { address: "10.0.0.5", family: 4 },
          ];
        case "mapped.test":
          return [{ address: "::ffff:169.254.169.254", family: 6 }];
        case "public.test":
          return [{ address: "93.184.216.34", family: 4 }];
        default: {
          const error: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
          error.code = "ENOTFOUND";
          throw error;
        }
      }
    };
    let account: { apiKey: string; accountId: string };

    beforeAll(async () => {
      app = await startTestApp(backend, { WEBHOOK_ALLOW_PRIVATE_NETWORKS: "false" }, { lookup });
      account = await app.createAccount("Refused");
    });

    it.each(HOSTILE_URLS.map((url) => [url.length > 80 ? `${url.slice(0, 40)}… (${url.length} chars)` : url, url]))(
      "refuses %s through GraphQL (BAD_USER_INPUT) and REST (400), storing nothing",
      async (_name, url) => {
        const count = () => app.handle.app.db.webhook.count();
        const before = await count();

        const viaGraphql = await app.gql(account.apiKey, CREATE, { input: { url, events: ["agent_created"] } });
        expect(viaGraphql.data?.createWebhook ?? null).toBeNull();
        expect(viaGraphql.errors?.[0]?.extensions?.code, JSON.stringify(viaGraphql.errors)).toBe("BAD_USER_INPUT");
        expect(viaGraphql.errors?.[0]?.message).toMatch(/url/i);

        const viaRest = await restCreate(account.apiKey, url);
        expect(viaRest.status, JSON.stringify(viaRest.body)).toBe(400);
        expect(Object.keys(viaRest.body)).toEqual(["error"]);
        expect(viaRest.body.error).toMatch(/url/i);

        expect(await count()).toBe(before);
      },
    );

    it("refuses updating a webhook to any of those URLs (GraphQL and REST) and leaves the row unchanged", async () => {
      const created = await app.gql(account.apiKey, CREATE, {
        input: { url: "https://public.test/hook", events: ["agent_updated"] },
      });
      expect(created.errors).toBeUndefined();
      const id = created.data.createWebhook.webhook.id;
      const row = () => app.handle.app.db.webhook.findUniqueOrThrow({ where: { id } });
      const before = await row();
      expect(before.url).toBe("https://public.test/hook");

      for (const url of HOSTILE_URLS) {
        const viaGraphql = await app.gql(account.apiKey, UPDATE, { id, input: { url } });
        expect(viaGraphql.errors?.[0]?.extensions?.code, url).toBe("BAD_USER_INPUT");
        const viaRest = await restPatch(account.apiKey, id, url);
        expect(viaRest.status, url).toBe(400);
        expect(Object.keys(viaRest.body)).toEqual(["error"]);
      }
      const after = await row();
      expect(after).toEqual(before);
    });

    it("refuses a host name that resolves to a private address at registration (10.0.0.5), even among public ones", async () => {
      const count = () => app.handle.app.db.webhook.count();
      const before = await count();
      for (const host of ["private.test", "mixed.test", "mapped.test"]) {
        const url = `https://${host}/hook`;
        const viaGraphql = await app.gql(account.apiKey, CREATE, { input: { url, events: ["agent_created"] } });
        expect(viaGraphql.errors?.[0]?.extensions?.code, host).toBe("BAD_USER_INPUT");
        expect(viaGraphql.errors?.[0]?.message).toContain(host === "mapped.test" ? "169.254.169.254" : "10.0.0.5");
        const viaRest = await restCreate(account.apiKey, url);
        expect(viaRest.status, host).toBe(400);
        expect(String(viaRest.body.error)).toContain(host === "mapped.test" ? "169.254.169.254" : "10.0.0.5");
      }
      expect(asked).toEqual(expect.arrayContaining(["private.test", "mixed.test", "mapped.test"]));
      expect(await count()).toBe(before);
    });

    it("DNS rebinding: a name that was public at registration and resolves to 127.0.0.1 at connect time is blocked, and the receiver gets nothing", async () => {
      const { apiKey } = await app.createAccount("Rebinding");
      const already = receiver.requests.length;
      const url = `http://rebind.test:${receiver.port}/hook`;
      const created = await app.gql(apiKey, CREATE, { input: { url, events: ["agent_created"] } });
      expect(created.errors, "registration sees 93.184.216.34 and accepts").toBeUndefined();
      expect(rebindCalls).toBe(1);
      const webhookId = created.data.createWebhook.webhook.id;

      const published = await app.gql(apiKey, PUBLISH, { input: agentCreated(2) });
      expect(published.errors).toBeUndefined();

      const [delivery] = await until(
        () => deliveryLog(apiKey, webhookId),
        (log) => log[0]?.status === "failed",
      );
      expect(delivery!.attemptCount).toBe(4);
      expect(delivery!.attempts).toHaveLength(4);
      for (const attempt of delivery!.attempts) {
        expect(attempt.succeeded).toBe(false);
        expect(attempt.responseStatus).toBeNull();
        expect(attempt.responseBody).toBeNull();
        expect(attempt.error).toMatch(/blocked/i);
        expect(attempt.error).toContain("127.0.0.1");
      }
      // Every attempt asked the resolver again (and got 127.0.0.1).
      expect(rebindCalls).toBeGreaterThanOrEqual(5);
      expect(receiver.requests.length).toBe(already);
    });

    it("a loopback webhook registered while private networks were allowed is blocked at every attempt now", async () => {
      const already = receiver.requests.length;
      const published = await app.gql(early.apiKey, PUBLISH, { input: agentCreated(3) });
      expect(published.errors).toBeUndefined();
      const eventId = published.data.publishEvent.id;
      const log = await until(
        async () => {
          const result = await app.gql(early.apiKey, `query ($e: ID!) { deliveries(eventId: $e) { edges { node {
            status attempts { responseStatus error succeeded } } } } }`, { e: eventId });
          return result.data.deliveries.edges.map((e: { node: LoggedDelivery }) => e.node) as LoggedDelivery[];
        },
        (entries) => entries[0]?.status === "failed",
      );
      expect(log).toHaveLength(1);
      for (const attempt of log[0]!.attempts) {
        expect(attempt.responseStatus).toBeNull();
        expect(attempt.succeeded).toBe(false);
        expect(attempt.error).toMatch(/blocked/i);
        expect(attempt.error).toContain("127.0.0.1");
      }
      expect(receiver.requests.length).toBe(already);
    });
  });
});
