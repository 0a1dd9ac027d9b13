import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { startReceiver, type Receiver } from "../helpers/receiver.ts";
import { untilValue as until } from "../helpers/verify.ts";

/**
 * The REST API of CONTRACT §4, driven with the exact request bodies of the Spawn documentation.
 * Every answer is checked the way a user sees it: status, exact keys, exact error bodies.
 */

/** The documentation's registration body, byte for byte. */
const DOC_CREATE_BODY = `{
  "url": "https://your-server.com/webhook-endpoint",
  "events": ["agent_created", "message_received"]
}`;

/** The documentation's update body, byte for byte. */
const DOC_PATCH_BODY = `{
  "events": ["agent_created", "conversation_updated"]
}`;

/** The `data` of the documentation's `message_received` payload. */
const DOC_MESSAGE_DATA = {
  agent_id: "agent_12345",
  user_id: "user_67890",
  message: "Hello, how can I help you?",
  conversation_id: "conv_98765",
};

const WEBHOOK_KEYS = ["created_at", "description", "events", "id", "status", "updated_at", "url"];
const WEBHOOK_ID = /^wh_[0-9a-z]{26}$/;
const SECRET = /^whsec_[A-Za-z0-9+/]{43}=$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

describeEachMode("REST API", (mode) => {
  let backend: Backend;
  let app: TestApp;
  const receivers: Receiver[] = [];

  async function call(
    method: string,
    path: string,
    key: string | null,
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<Answer> {
    const response = await fetch(`${app.baseUrl}${path}`, {
      method,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body } : {}),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  }

  /** A `{"error": "<message>"}` body and nothing else. */
  function expectErrorBody(answer: Answer, status: number): void {
    expect(answer.status, answer.text).toBe(status);
    expect(answer.headers.get("content-type")).toMatch(/^application\/json/);
    expect(Object.keys(answer.json)).toEqual(["error"]);
    expect(typeof answer.json.error).toBe("string");
    expect(answer.json.error.length).toBeGreaterThan(0);
  }

  async function createWebhook(key: string, url: string, events: string[]) {
    const created = await call("POST", "/api/v1/webhooks", key, JSON.stringify({ url, events }));
    expect(created.status, created.text).toBe(201);
    return created.json as { id: string; url: string; events: string[]; status: string; secret: string };
  }

  async function deliveriesOf(key: string, webhookId: string) {
    const answer = await call("GET", `/api/v1/webhooks/${webhookId}/deliveries`, key);
    expect(answer.status, answer.text).toBe(200);
    return answer.json as { data: Array<Record<string, unknown>>; has_more: boolean; next_cursor: string | null };
  }

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend);
  });
  afterAll(async () => {
    for (const receiver of receivers) await receiver.close();
    await app?.stop();
    await backend?.dispose();
  });

  it("POST, PATCH, GET, list and DELETE /api/v1/webhooks with the documentation's exact bodies", async () => {
    // This account never publishes: its webhook points at the documentation's example host.
    const { apiKey } = await app.createAccount("Docs");

    const created = await call("POST", "/api/v1/webhooks", apiKey, DOC_CREATE_BODY);
    expect(created.status, created.text).toBe(201);
    expect(created.headers.get("content-type")).toMatch(/^application\/json/);
    expect(Object.keys(created.json).sort()).toEqual(["events", "id", "secret", "status", "url"]);
    expect(created.json).toEqual({
      id: expect.stringMatching(WEBHOOK_ID),
      url: "https://your-server.com/webhook-endpoint",
      events: ["agent_created", "message_received"],
      status: "active",
      secret: expect.stringMatching(SECRET),
    });
    const id: string = created.json.id;

    const patched = await call("PATCH", `/api/v1/webhooks/${id}`, apiKey, DOC_PATCH_BODY);
    expect(patched.status, patched.text).toBe(200);
    expect(Object.keys(patched.json).sort()).toEqual(WEBHOOK_KEYS);
    expect(patched.text).not.toContain("whsec_");
    expect(patched.json).toEqual({
      id,
      url: "https://your-server.com/webhook-endpoint",
      events: ["agent_created", "conversation_updated"],
      status: "active",
      description: null,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    expect(Date.parse(patched.json.updated_at)).toBeGreaterThanOrEqual(Date.parse(patched.json.created_at));

    const one = await call("GET", `/api/v1/webhooks/${id}`, apiKey);
    expect(one.status, one.text).toBe(200);
    expect(one.json).toEqual(patched.json);
    expect(one.text).not.toContain("whsec_");

    const list = await call("GET", "/api/v1/webhooks", apiKey);
    expect(list.status, list.text).toBe(200);
    expect(Object.keys(list.json).sort()).toEqual(["data", "has_more", "next_cursor"]);
    expect(list.json).toEqual({ data: [patched.json], has_more: false, next_cursor: null });
    expect(list.text).not.toContain("whsec_");

    const deleted = await call("DELETE", `/api/v1/webhooks/${id}`, apiKey);
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe("");

    expectErrorBody(await call("GET", `/api/v1/webhooks/${id}`, apiKey), 404);
    expectErrorBody(await call("DELETE", `/api/v1/webhooks/${id}`, apiKey), 404);
    expectErrorBody(await call("PATCH", `/api/v1/webhooks/${id}`, apiKey, DOC_PATCH_BODY), 404);
    expectErrorBody(await call("GET", `/api/v1/webhooks/${id}/deliveries`, apiKey), 404);
    expect((await call("GET", "/api/v1/webhooks", apiKey)).json).toEqual({ data: [], has_more: false, next_cursor: null });
  });

  it("pages ?limit=2&cursor= over 5 webhooks: newest first, each seen once, has_more/next_cursor right", async () => {
    const { apiKey } = await app.createAccount("Pages");
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await createWebhook(apiKey, `http://127.0.0.1:9/pages/${i}`, ["agent_updated"])).id);
    }
    const seen: string[] = [];
    const pages: Array<{ size: number; has_more: boolean; next_cursor: string | null }> = [];
    let cursor: string | null = null;
    do {
      const page = await call("GET", `/api/v1/webhooks?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, apiKey);
      expect(page.status, page.text).toBe(200);
      expect(Object.keys(page.json).sort()).toEqual(["data", "has_more", "next_cursor"]);
      for (const webhook of page.json.data) expect(Object.keys(webhook).sort()).toEqual(WEBHOOK_KEYS);
      seen.push(...page.json.data.map((w: { id: string }) => w.id));
      pages.push({ size: page.json.data.length, has_more: page.json.has_more, next_cursor: page.json.next_cursor });
      cursor = page.json.next_cursor;
    } while (cursor !== null && pages.length < 10);

    expect(pages.map((p) => p.size)).toEqual([2, 2, 1]);
    expect(pages.map((p) => p.has_more)).toEqual([true, true, false]);
    expect(pages[0]!.next_cursor).toEqual(expect.any(String));
    expect(pages[1]!.next_cursor).toEqual(expect.any(String));
    expect(pages[2]!.next_cursor).toBeNull();
    expect(new Set(seen).size).toBe(5);
    expect(seen).toEqual([...ids].reverse());

    // limit=5 holds them all, and says there is nothing more.
    const all = await call("GET", "/api/v1/webhooks?limit=5", apiKey);
    expect(all.json.has_more).toBe(false);
    expect(all.json.next_cursor).toBeNull();
    expect(all.json.data.map((w: { id: string }) => w.id)).toEqual([...ids].reverse());
  });

  it("POST /api/v1/events with the documentation's message_received data → 202, delivered, and listed in the delivery log", async () => {
    const receiver = await startReceiver();
    receivers.push(receiver);
    const { apiKey } = await app.createAccount("Deliveries");
    const webhook = await createWebhook(apiKey, receiver.url, ["message_received"]);

    const body = `{"event":"message_received","data":{"agent_id":"agent_12345","user_id":"user_67890","message":"Hello, how can I help you?","conversation_id":"conv_98765"}}`;
    const before = Math.floor(Date.now() / 1000);
    const published = await call("POST", "/api/v1/events", apiKey, body);
    expect(published.status, published.text).toBe(202);
    expect(Object.keys(published.json).sort()).toEqual(["data", "event", "id", "timestamp"]);
    expect(published.json).toEqual({
      id: expect.stringMatching(/^evt_[0-9a-z]{26}$/),
      event: "message_received",
      timestamp: expect.any(Number),
      data: DOC_MESSAGE_DATA,
    });
    expect(Number.isInteger(published.json.timestamp)).toBe(true);
    expect(published.json.timestamp).toBeGreaterThanOrEqual(before - 1);
    expect(published.json.timestamp).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 1);
    // The data keeps the order it was sent in.
    expect(JSON.stringify(published.json.data)).toBe(JSON.stringify(DOC_MESSAGE_DATA));

    const [request] = await receiver.waitFor(1);
    expect(JSON.parse(request!.body)).toEqual({
      event: "message_received",
      timestamp: published.json.timestamp,
      data: DOC_MESSAGE_DATA,
    });

    const log = await until(
      () => deliveriesOf(apiKey, webhook.id),
      (page) => page.data.length === 1 && page.data[0]!.status === "succeeded",
    );
    expect(log.has_more).toBe(false);
    expect(log.next_cursor).toBeNull();
    const entry = log.data[0]!;
    expect(entry).toMatchObject({
      id: expect.stringMatching(/^dlv_[0-9a-z]{26,}$/),
      event: "message_received",
      event_id: published.json.id,
      status: "succeeded",
      attempts: 1,
      last_attempt: expect.stringMatching(/^\d+$/),
    });
    const lastAttempt = Number(entry.last_attempt);
    expect(lastAttempt).toBeGreaterThanOrEqual(before - 1);
    expect(lastAttempt).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 1);

    // idempotency_key: the same key returns the same event and creates nothing new.
    const keyed = `{"event":"message_received","data":{"agent_id":"agent_12345","user_id":"user_67890","message":"again","conversation_id":"conv_98765"},"idempotency_key":"order-42"}`;
    const first = await call("POST", "/api/v1/events", apiKey, keyed);
    expect(first.status, first.text).toBe(202);
    const second = await call("POST", "/api/v1/events", apiKey, keyed);
    expect(second.status, second.text).toBe(202);
    expect(second.json.id).toBe(first.json.id);
    expect(second.json).toEqual(first.json);
    expect(first.json.id).not.toBe(published.json.id);
    const afterKeyed = await until(
      () => deliveriesOf(apiKey, webhook.id),
      (page) => page.data.length >= 2 && page.data.every((d) => d.status === "succeeded"),
    );
    expect(afterKeyed.data.map((d) => d.event_id)).toEqual([first.json.id, published.json.id]);
    await receiver.waitFor(2);
    expect(receiver.requests).toHaveLength(2);
  });

  it("a failing receiver ends as the documentation's failed-delivery log entry, and the webhook is disabled", async () => {
    const receiver = await startReceiver((_req, _n, res) => void res.writeHead(500).end("nope"));
    receivers.push(receiver);
    const { apiKey } = await app.createAccount("Failing");
    const webhook = await createWebhook(apiKey, receiver.url, ["conversation_updated"]);

    const published = await call("POST", "/api/v1/events", apiKey, `{"event":"conversation_updated","data":{"conversation_id":"conv_98765"}}`);
    expect(published.status, published.text).toBe(202);

    const log = await until(
      () => deliveriesOf(apiKey, webhook.id),
      (page) => page.data[0]?.status === "failed",
    );
    expect(log.data).toHaveLength(1);
    expect(log.data[0]).toMatchObject({
      event: "conversation_updated",
      event_id: published.json.id,
      status: "failed",
      attempts: 4,
      last_attempt: expect.stringMatching(/^\d+$/),
    });
    expect(receiver.requests).toHaveLength(4);

    const after = await call("GET", `/api/v1/webhooks/${webhook.id}`, apiKey);
    expect(after.json.status).toBe("disabled");
    // The status filter finds it.
    expect((await call("GET", `/api/v1/webhooks/${webhook.id}/deliveries?status=failed`, apiKey)).json.data).toHaveLength(1);
    expect((await call("GET", `/api/v1/webhooks/${webhook.id}/deliveries?status=succeeded`, apiKey)).json.data).toHaveLength(0);
  });

  it("401 bodies are exactly {\"error\":\"Missing API key\"} and {\"error\":\"Invalid API key\"} on every route", async () => {
    const { apiKey } = await app.createAccount("Auth");
    const webhook = await createWebhook(apiKey, "http://127.0.0.1:9/auth-hook", ["agent_deleted"]);
    const routes: Array<[string, string, string?]> = [
      ["POST", "/api/v1/webhooks", DOC_CREATE_BODY],
      ["GET", "/api/v1/webhooks"],
      ["GET", `/api/v1/webhooks/${webhook.id}`],
      ["PATCH", `/api/v1/webhooks/${webhook.id}`, DOC_PATCH_BODY],
      ["DELETE", `/api/v1/webhooks/${webhook.id}`],
      ["GET", `/api/v1/webhooks/${webhook.id}/deliveries`],
      ["POST", "/api/v1/events", `{"event":"agent_deleted","data":{"agent_id":"agent_1"}}`],
    ];
    const count = () => app.handle.app.db.webhook.count();
    const events = () => app.handle.app.db.event.count();
    const [webhooksBefore, eventsBefore] = [await count(), await events()];
    for (const [method, path, body] of routes) {
      const missing = await call(method, path, null, body);
      expect(missing.status, `${method} ${path}`).toBe(401);
      expect(missing.json).toEqual({ error: "Missing API key" });

      const wrong = await call(method, path, "sk_live_this_is_not_a_key_0000000000", body);
      expect(wrong.status, `${method} ${path}`).toBe(401);
      expect(wrong.json).toEqual({ error: "Invalid API key" });

      const notBearer = await call(method, path, null, body, { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` });
      expect(notBearer.status, `${method} ${path}`).toBe(401);
      expect(notBearer.json).toEqual({ error: "Invalid API key" });
    }
    expect(await count()).toBe(webhooksBefore);
    expect(await events()).toBe(eventsBefore);
    expect((await call("GET", `/api/v1/webhooks/${webhook.id}`, apiKey)).status).toBe(200);
  });

  it("tenant isolation: account B gets 404 on every route of A's webhook, and A's webhook is unchanged", async () => {
    const a = await app.createAccount("Tenant A");
    const b = await app.createAccount("Tenant B");
    const aHook = await createWebhook(a.apiKey, "http://127.0.0.1:9/tenant-a-private-path", ["agent_created", "user_logged_in"]);
    const original = await call("GET", `/api/v1/webhooks/${aHook.id}`, a.apiKey);
    expect(original.status).toBe(200);
    const row = () => app.handle.app.db.webhook.findUniqueOrThrow({ where: { id: aHook.id } });
    const rowBefore = await row();

    const attempts: Answer[] = [
      await call("GET", `/api/v1/webhooks/${aHook.id}`, b.apiKey),
      await call(
        "PATCH",
        `/api/v1/webhooks/${aHook.id}`,
        b.apiKey,
        JSON.stringify({ url: "https://evil.example.com/", events: ["server_error"], status: "disabled" }),
      ),
      await call("PATCH", `/api/v1/webhooks/${aHook.id}`, b.apiKey, DOC_PATCH_BODY),
      await call("DELETE", `/api/v1/webhooks/${aHook.id}`, b.apiKey),
      await call("GET", `/api/v1/webhooks/${aHook.id}/deliveries`, b.apiKey),
      await call("GET", `/api/v1/webhooks/${aHook.id}/deliveries?status=pending`, b.apiKey),
    ];
    for (const attempt of attempts) {
      expectErrorBody(attempt, 404);
      expect(attempt.text).not.toContain("tenant-a-private-path");
    }

    // B's list never shows A's webhook, even with a cursor taken from A's side.
    const bList = await call("GET", "/api/v1/webhooks", b.apiKey);
    expect(bList.json).toEqual({ data: [], has_more: false, next_cursor: null });
    const bCursor = await call("GET", `/api/v1/webhooks?cursor=${encodeURIComponent("wh_zzzzzzzzzzzzzzzzzzzzzzzzzz")}`, b.apiKey);
    expect(bCursor.json.data).toEqual([]);

    // B cannot publish into A's account.
    const eventsBefore = await app.handle.app.db.event.count({ where: { accountId: a.accountId } });
    const foreign = await call(
      "POST",
      "/api/v1/events",
      b.apiKey,
      JSON.stringify({ event: "user_logged_in", data: { user_id: "u1" }, account_id: a.accountId }),
    );
    expect(foreign.status).toBeGreaterThanOrEqual(400);
    expect(foreign.status).toBeLessThan(500);
    expect(Object.keys(foreign.json)).toEqual(["error"]);
    expect(await app.handle.app.db.event.count({ where: { accountId: a.accountId } })).toBe(eventsBefore);

    // A sees its webhook exactly as before, secret included.
    const now = await call("GET", `/api/v1/webhooks/${aHook.id}`, a.apiKey);
    expect(now.status).toBe(200);
    expect(now.json).toEqual(original.json);
    const rowAfter = await row();
    expect(rowAfter.secret).toBe(rowBefore.secret);
    expect(rowAfter.secret).toBe(aHook.secret);
    expect(rowAfter.updatedAt.getTime()).toBe(rowBefore.updatedAt.getTime());
    expect((await call("GET", "/api/v1/webhooks", a.apiKey)).json.data).toEqual([original.json]);
  });

  it("bad input is 400 {\"error\": …} and stores nothing", async () => {
    const { apiKey, accountId } = await app.createAccount("Bad input");
    const webhook = await createWebhook(apiKey, "http://127.0.0.1:9/bad-input-hook", ["agent_created"]);
    const before = await call("GET", `/api/v1/webhooks/${webhook.id}`, apiKey);
    const count = () => app.handle.app.db.webhook.count({ where: { accountId } });
    const events = () => app.handle.app.db.event.count({ where: { accountId } });
    const [webhooksBefore, eventsBefore] = [await count(), await events()];

    const cases: Array<[string, string, string?]> = [
      ["POST", "/api/v1/webhooks", `{"url": "https://x.example.com/", "events": ["agent_exploded"]}`],
      ["POST", "/api/v1/webhooks", `{"url": "https://x.example.com/", "events": ["agent_created", "nope"]}`],
      ["POST", "/api/v1/webhooks", `{"url": "https://x.example.com/", "events": []}`],
      ["POST", "/api/v1/webhooks", `{"url": "https://x.example.com/"}`],
      ["POST", "/api/v1/webhooks", `{"events": ["agent_created"]}`],
      ["POST", "/api/v1/webhooks", `{"url": 42, "events": ["agent_created"]}`],
      ["POST", "/api/v1/webhooks", `{"url": "https://x.example.com/", "events": ["agent_created"], "secret": "whsec_mine"}`],
      ["POST", "/api/v1/webhooks", `{"url": "https://x.example.com/", "events": ["agent_created"], "unknown": true}`],
      ["POST", "/api/v1/webhooks", `["https://x.example.com/"]`],
      ["PATCH", `/api/v1/webhooks/${webhook.id}`, `{"events": ["agent_exploded"]}`],
      ["PATCH", `/api/v1/webhooks/${webhook.id}`, `{"events": []}`],
      ["PATCH", `/api/v1/webhooks/${webhook.id}`, `{"status": "paused"}`],
      ["PATCH", `/api/v1/webhooks/${webhook.id}`, `{"url": "ftp://x.example.com/"}`],
      ["PATCH", `/api/v1/webhooks/${webhook.id}`, `{"events": ["agent_updated"], "id": "wh_other"}`],
      ["GET", "/api/v1/webhooks?limit=0"],
      ["GET", "/api/v1/webhooks?limit=101"],
      ["GET", "/api/v1/webhooks?limit=abc"],
      ["GET", "/api/v1/webhooks?limit=2.5"],
      ["GET", "/api/v1/webhooks?limit=-1"],
      ["GET", "/api/v1/webhooks?status=paused"],
      ["GET", `/api/v1/webhooks/${webhook.id}/deliveries?limit=0`],
      ["GET", `/api/v1/webhooks/${webhook.id}/deliveries?limit=abc`],
      ["GET", `/api/v1/webhooks/${webhook.id}/deliveries?status=lost`],
      ["POST", "/api/v1/events", `{"event":"agent_exploded","data":{"agent_id":"a"}}`],
      ["POST", "/api/v1/events", `{"data":{"agent_id":"a"}}`],
      ["POST", "/api/v1/events", `{"event":"agent_created","data":{"agent_id":"a"}}`],
      ["POST", "/api/v1/events", `{"event":"agent_created","data":{"agent_id":"a","name":"n","created_by":"u"},"extra":1}`],
    ];
    for (const [method, path, body] of cases) {
      const answer = await call(method, path, apiKey, body);
      expect(answer.status, `${method} ${path} ${body ?? ""}: ${answer.text}`).toBe(400);
      expectErrorBody(answer, 400);
    }
    expect(await count()).toBe(webhooksBefore);
    expect(await events()).toBe(eventsBefore);
    expect((await call("GET", `/api/v1/webhooks/${webhook.id}`, apiKey)).json).toEqual(before.json);

    // An unknown route is a JSON 404, an unknown method on a known route is refused.
    expectErrorBody(await call("GET", "/api/v1/nothing-here", apiKey), 404);
    const wrongMethod = await call("PUT", `/api/v1/webhooks/${webhook.id}`, apiKey, DOC_PATCH_BODY);
    expect(wrongMethod.status).toBe(405);
    expect(Object.keys(wrongMethod.json)).toEqual(["error"]);
  });
});
