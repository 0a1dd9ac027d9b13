import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { connectSubscriptions, untilLive } from "../helpers/subscriptions.ts";
import { until } from "../helpers/verify.ts";
import { connectionOutcome, connectWs } from "../helpers/ws.ts";

/** Many requests with one key in quick succession: the API rate limit is not under test here. */
const APP_ENV = { API_RATE_LIMIT: "100000/s" };

const VIEWER = `{ viewer { id name } }`;
const WEBHOOKS = `{ webhooks { edges { node { id url } } } }`;
const CREATE_WEBHOOK = `mutation ($url: String!) {
  createWebhook(input: { url: $url, events: [agent_created] }) { webhook { id url } secret }
}`;
const CREATE_API_KEY = `mutation ($accountId: ID, $name: String) {
  createApiKey(accountId: $accountId, name: $name) { apiKey key { id accountId prefix } }
}`;
const REVOKE_API_KEY = `mutation ($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }`;
const REVOKED_ERROR = `"errors":[{"message":"API key revoked","extensions":{"code":"UNAUTHENTICATED"}}]`;

/** A GraphQL subscription over Server-Sent Events (graphql-yoga), read as it streams. */
async function openEventStream(url: string, apiKey: string, query = "subscription { events { id } }") {
  const response = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, accept: "text/event-stream", "content-type": "application/json" },
    body: JSON.stringify({ query }),
  });
  expect(response.status).toBe(200);
  const state = { text: "", done: false };
  const pump = (async () => {
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) state.text += chunk.value;
    state.done = true;
  })();
  return {
    get text() {
      return state.text;
    },
    /** Resolves once the server ended the stream; rejects after `timeoutMs`. */
    async ended(timeoutMs: number) {
      await until(() => state.done, { timeoutMs, what: "the event stream to end", describe: () => state.text });
      await pump;
    },
  };
}

const PUBLISH = `mutation ($name: String!) {
  publishEvent(input: { type: agent_created, data: { agent_id: "a1", name: $name, created_by: "u1" } }) { id }
}`;

describeEachMode("authentication and authorization", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let a: { accountId: string; apiKey: string };
  let b: { accountId: string; apiKey: string };
  let aWebhookId: string;

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend, APP_ENV);
    a = await app.createAccount("Account A");
    b = await app.createAccount("Account B");
    const created = await app.gql(a.apiKey, CREATE_WEBHOOK, { url: "https://a.example.com/hook" });
    aWebhookId = created.data.createWebhook.webhook.id;
  });
  afterAll(async () => {
    await app?.stop();
    await backend?.dispose();
  });

  describe("over HTTP", () => {
    it("refuses a request without a key: 401 Missing API key", async () => {
      const result = await app.gql(null, VIEWER);
      expect(result.status).toBe(401);
      expect(result.data ?? null).toBeNull();
      expect(result.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      expect(result.errors?.[0]?.message).toBe("Missing API key");
    });

    it("refuses an unknown key: 401 Invalid API key", async () => {
      const result = await app.gql("sk_thisKeyDoesNotExist", VIEWER);
      expect(result.status).toBe(401);
      expect(result.data ?? null).toBeNull();
      expect(result.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      expect(result.errors?.[0]?.message).toBe("Invalid API key");
    });

    it("refuses an Authorization header that is not a bearer token", async () => {
      const result = await app.gql(null, VIEWER, undefined, { authorization: `Basic ${a.apiKey}` });
      expect(result.status).toBe(401);
      expect(result.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      expect(result.errors?.[0]?.message).toBe("Invalid API key");
    });

    it("refuses over GET as well", async () => {
      const response = await fetch(`${app.url}?query=${encodeURIComponent(VIEWER)}`);
      expect(response.status).toBe(401);
      const body = (await response.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
      expect(body.errors[0]!.extensions.code).toBe("UNAUTHENTICATED");
      expect(body.errors[0]!.message).toBe("Missing API key");
    });

    it("refuses a revoked key, and only that key", async () => {
      const created = await app.gql(a.apiKey, CREATE_API_KEY, { name: "to revoke" });
      expect(created.errors).toBeUndefined();
      const { apiKey, key } = created.data.createApiKey;
      expect(key.accountId).toBe(a.accountId);

      const before = await app.gql(apiKey, VIEWER);
      expect(before.status).toBe(200);
      expect(before.data.viewer.id).toBe(a.accountId);

      const revoked = await app.gql(a.apiKey, REVOKE_API_KEY, { id: key.id });
      expect(revoked.errors).toBeUndefined();
      expect(revoked.data.revokeApiKey.revokedAt).toEqual(expect.any(String));

      const after = await app.gql(apiKey, VIEWER);
      expect(after.status).toBe(401);
      expect(after.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
      expect(after.errors?.[0]?.message).toBe("Invalid API key");

      // The account's other key is untouched.
      const other = await app.gql(a.apiKey, VIEWER);
      expect(other.data.viewer.id).toBe(a.accountId);
    });

    it("an account key sees its own account", async () => {
      const result = await app.gql(a.apiKey, VIEWER);
      expect(result.status).toBe(200);
      expect(result.data.viewer).toEqual({ id: a.accountId, name: "Account A" });
    });

    it("an account key may not create accounts: FORBIDDEN", async () => {
      const result = await app.gql(a.apiKey, `mutation { createAccount(name: "sneaky") { account { id } apiKey } }`);
      expect(result.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      expect(result.data?.createAccount ?? null).toBeNull();
      const accounts = await app.handle.app.db.account.count({ where: { name: "sneaky" } });
      expect(accounts).toBe(0);
    });

    it("an account key ignores X-Account-Id: it still sees only its own account", async () => {
      const viewer = await app.gql(b.apiKey, VIEWER, undefined, { "x-account-id": a.accountId });
      expect(viewer.data.viewer.id).toBe(b.accountId);
      const list = await app.gql(b.apiKey, WEBHOOKS, undefined, { "x-account-id": a.accountId });
      expect(list.errors).toBeUndefined();
      expect(list.data.webhooks.edges.map((e: { node: { id: string } }) => e.node.id)).not.toContain(aWebhookId);
    });

    it("the admin key acts for an account named by X-Account-Id", async () => {
      const list = await app.gql(app.adminKey, WEBHOOKS, undefined, { "x-account-id": a.accountId });
      expect(list.status).toBe(200);
      expect(list.errors).toBeUndefined();
      expect(list.data.webhooks.edges).toEqual([
        { node: { id: aWebhookId, url: "https://a.example.com/hook" } },
      ]);
      const viewer = await app.gql(app.adminKey, VIEWER, undefined, { "x-account-id": b.accountId });
      expect(viewer.data.viewer.id).toBe(b.accountId);
    });

    it("the admin key without X-Account-Id cannot use account operations: FORBIDDEN", async () => {
      const list = await app.gql(app.adminKey, WEBHOOKS);
      expect(list.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      expect(list.data?.webhooks ?? null).toBeNull();

      const before = await app.handle.app.db.webhook.count();
      const created = await app.gql(app.adminKey, CREATE_WEBHOOK, { url: "https://admin.example.com/hook" });
      expect(created.errors?.[0]?.extensions?.code).toBe("FORBIDDEN");
      expect(await app.handle.app.db.webhook.count()).toBe(before);
    });

    it("the admin key naming an account that does not exist gets NOT_FOUND", async () => {
      const list = await app.gql(app.adminKey, WEBHOOKS, undefined, { "x-account-id": "acc_doesnotexist" });
      expect(list.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
      expect(list.data?.webhooks ?? null).toBeNull();
    });

    it("an account key creating a key for another account gets NOT_FOUND, and no key is made", async () => {
      const before = await app.handle.app.db.apiKey.count({ where: { accountId: b.accountId } });
      const result = await app.gql(a.apiKey, CREATE_API_KEY, { accountId: b.accountId, name: "intruder" });
      expect(result.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
      expect(result.data?.createApiKey ?? null).toBeNull();
      expect(await app.handle.app.db.apiKey.count({ where: { accountId: b.accountId } })).toBe(before);
    });

    it("an account key cannot revoke another account's key: NOT_FOUND, and the key keeps working", async () => {
      const bKey = await app.handle.app.db.apiKey.findFirstOrThrow({ where: { accountId: b.accountId } });
      const result = await app.gql(a.apiKey, REVOKE_API_KEY, { id: bKey.id });
      expect(result.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
      const still = await app.gql(b.apiKey, VIEWER);
      expect(still.data.viewer.id).toBe(b.accountId);
    });

    it("the admin key creates a key for a named account, and that key works", async () => {
      const result = await app.gql(app.adminKey, CREATE_API_KEY, { accountId: b.accountId, name: "by admin" });
      expect(result.errors).toBeUndefined();
      expect(result.data.createApiKey.apiKey).toMatch(/^sk_/);
      expect(result.data.createApiKey.apiKey).not.toMatch(/^sk_admin_/);
      const viewer = await app.gql(result.data.createApiKey.apiKey, VIEWER);
      expect(viewer.data.viewer.id).toBe(b.accountId);
    });

    it("stores keys only as hashes", async () => {
      const fresh = await app.createAccount("Hashed");
      const extra = await app.gql(fresh.apiKey, CREATE_API_KEY, { name: "second" });
      const plaintexts = [fresh.apiKey, extra.data.createApiKey.apiKey as string, a.apiKey, b.apiKey];
      const rows = await app.handle.app.db.apiKey.findMany();
      expect(rows.length).toBeGreaterThanOrEqual(4);
      const stored = JSON.stringify(rows);
      for (const key of plaintexts) {
        // Neither the key nor its random part (after "sk_") appears in any column.
        expect(stored).not.toContain(key);
        expect(stored).not.toContain(key.slice("sk_".length));
      }
      // And the keys still work, so what is stored is enough to check them.
      expect((await app.gql(fresh.apiKey, VIEWER)).data.viewer.id).toBe(fresh.accountId);
    });
  });

  describe("over WebSocket (graphql-ws)", () => {
    it("closes a connection with a wrong key with 4403", async () => {
      const outcome = await connectionOutcome(app.wsUrl, { authorization: "Bearer wrong" });
      expect(outcome).toMatchObject({ connected: false, code: 4403 });
    });

    it("closes a connection without a connection_init payload with 4403", async () => {
      const outcome = await connectionOutcome(app.wsUrl);
      expect(outcome).toMatchObject({ connected: false, code: 4403 });
    });

    it("closes a connection with a revoked key with 4403", async () => {
      const created = await app.gql(a.apiKey, CREATE_API_KEY, { name: "ws revoke" });
      const { apiKey, key } = created.data.createApiKey;
      expect(await connectionOutcome(app.wsUrl, { authorization: `Bearer ${apiKey}` })).toEqual({ connected: true });
      await app.gql(a.apiKey, REVOKE_API_KEY, { id: key.id });
      const outcome = await connectionOutcome(app.wsUrl, { authorization: `Bearer ${apiKey}` });
      expect(outcome).toMatchObject({ connected: false, code: 4403 });
    });

    it("closes the open connections of a key when it is revoked, and only those", async () => {
      const created = await app.gql(a.apiKey, CREATE_API_KEY, { name: "ws revoked while open" });
      const { apiKey, key } = created.data.createApiKey;
      const doomed = connectSubscriptions(app.wsUrl, apiKey);
      const bystander = connectSubscriptions(app.wsUrl, a.apiKey);
      try {
        const publish = async (name: string) => {
          const result = await app.gql(a.apiKey, PUBLISH, { name });
          expect(result.errors).toBeUndefined();
          return result.data.publishEvent.id as string;
        };
        const doomedEvents = doomed.subscribe<{ id: string }>(`subscription { events { id } }`);
        const bystanderEvents = bystander.subscribe<{ id: string }>(`subscription { events { id } }`);
        for (const events of [doomedEvents, bystanderEvents]) {
          await untilLive(events, async () => {
            const id = await publish("probe");
            return (item) => item.id === id;
          });
        }
        let closed: { code: number; reason: string } | undefined;
        doomed.client.on("closed", (event) => void (closed = event as { code: number; reason: string }));

        const revoked = await app.gql(a.apiKey, REVOKE_API_KEY, { id: key.id });
        expect(revoked.errors).toBeUndefined();
        // at once, not at the periodic re-check (30 s)
        const close = await until(() => closed, { timeoutMs: 5_000, what: "the revoked key's connection to close" });
        expect(close).toMatchObject({ code: 4403, reason: "Forbidden: API key revoked" });
        await until(async () => doomedEvents.ended || undefined);

        // The other key's connection goes on streaming.
        const after = await publish("after the revocation");
        expect(await bystanderEvents.waitFor((item) => item.id === after)).toEqual({ id: after });
        expect(bystanderEvents.ended).toBe(false);
      } finally {
        await doomed.dispose();
        await bystander.dispose();
      }
    });

    it("ends the connections and subscriptions of a key revoked without an announcement, at the periodic re-check", async () => {
      // a second service on a database of its own, re-checking every 200 ms; the key is revoked
      // in the database directly, as if the pub/sub announcement had been lost
      const quietBackend = await createBackend(mode);
      const quiet = await startTestApp(quietBackend, { ...APP_ENV, API_KEY_RECHECK_INTERVAL: "200ms" });
      try {
        const account = await quiet.createAccount("Re-checked");
        const created = await quiet.gql(account.apiKey, CREATE_API_KEY, { name: "revoked behind its back" });
        const { apiKey, key } = created.data.createApiKey;
        // a second key, used only by a Server-Sent-Events subscription (no WebSocket watches it)
        const createdForStream = await quiet.gql(account.apiKey, CREATE_API_KEY, { name: "stream revoked behind its back" });
        const streamKey = createdForStream.data.createApiKey;
        const ws = connectWs(quiet.wsUrl, { authorization: `Bearer ${apiKey}` }, { lazy: false });
        const kept = connectWs(quiet.wsUrl, { authorization: `Bearer ${account.apiKey}` }, { lazy: false });
        const stream = await openEventStream(quiet.url, streamKey.apiKey);
        try {
          await until(() => ws.connects === 1 && kept.connects === 1, { what: "both connections to be acknowledged" });
          await quiet.handle.app.db.apiKey.updateMany({
            where: { id: { in: [key.id, streamKey.key.id] } },
            data: { revokedAt: new Date() },
          });
          const close = await until(() => ws.closes[0], { timeoutMs: 5_000, what: "the re-check to close the connection" });
          expect(close).toEqual({ code: 4403, reason: "Forbidden: API key revoked" });
          await stream.ended(5_000);
          expect(stream.text).toContain(REVOKED_ERROR);
          // the other key's connection stays open and answers
          const outcome = await kept.run(VIEWER);
          expect(outcome.closed).toBeUndefined();
          expect(outcome.results).toEqual([{ data: { viewer: { id: account.accountId, name: "Re-checked" } } }]);
        } finally {
          await ws.dispose();
          await kept.dispose();
        }
      } finally {
        await quiet.stop();
        await quietBackend.dispose();
      }
    });

    it("ends a subscription over Server-Sent Events with UNAUTHENTICATED when its key is revoked", async () => {
      const created = await app.gql(a.apiKey, CREATE_API_KEY, { name: "sse revoked while open" });
      const { apiKey, key } = created.data.createApiKey;
      const stream = await openEventStream(app.url, apiKey);
      // the stream is live once an event published now arrives on it
      const eventId = await until(async () => {
        const published = await app.gql(a.apiKey, PUBLISH, { name: "sse probe" });
        const id = published.data.publishEvent.id as string;
        await sleep(200);
        return stream.text.includes(id) ? id : undefined;
      });
      expect(stream.text).toContain(`"events":{"id":"${eventId}"}`);

      expect((await app.gql(a.apiKey, REVOKE_API_KEY, { id: key.id })).errors).toBeUndefined();
      await stream.ended(5_000);
      expect(stream.text).toContain(REVOKED_ERROR);
      expect(stream.text.trimEnd()).toMatch(/event: complete\ndata:$/);
    });

    it("runs a query for a good key", async () => {
      const ws = connectWs(app.wsUrl, { authorization: `Bearer ${a.apiKey}` });
      try {
        const outcome = await ws.run(VIEWER);
        expect(outcome.closed).toBeUndefined();
        expect(outcome.errors).toBeUndefined();
        expect(outcome.results).toEqual([{ data: { viewer: { id: a.accountId, name: "Account A" } } }]);
      } finally {
        await ws.dispose();
      }
    });

    it("lets the admin key act for an account named in connection_init", async () => {
      const ws = connectWs(app.wsUrl, { authorization: `Bearer ${app.adminKey}`, "x-account-id": a.accountId });
      try {
        const outcome = await ws.run(WEBHOOKS);
        expect(outcome.results).toEqual([
          { data: { webhooks: { edges: [{ node: { id: aWebhookId, url: "https://a.example.com/hook" } }] } } },
        ]);
      } finally {
        await ws.dispose();
      }
    });

    it("a malformed operation gets an error, and the connection stays open for the next one", async () => {
      const ws = connectWs(app.wsUrl, { authorization: `Bearer ${a.apiKey}` }, { lazy: false });
      try {
        const broken = await ws.run("{ viewer { ");
        expect(broken.closed).toBeUndefined();
        expect(broken.errors?.[0]?.message).toMatch(/Syntax Error/);
        const next = await ws.run(VIEWER);
        expect(next.results).toEqual([{ data: { viewer: { id: a.accountId, name: "Account A" } } }]);
        expect(ws.closes).toEqual([]);
        expect(ws.connects).toBe(1);
      } finally {
        await ws.dispose();
      }
    });
  });
});
