import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";

/** Many requests with one key in quick succession: the API rate limit is not under test here. */
const APP_ENV = { API_RATE_LIMIT: "100000/s" };

const FIELDS = `id url events status description disabledReason createdAt updatedAt`;
const CREATE = `mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { ${FIELDS} } secret } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { ${FIELDS} } }`;
const ROTATE = `mutation ($id: ID!) { rotateWebhookSecret(id: $id) { webhook { ${FIELDS} } secret } }`;
const GET = `query ($id: ID!) { webhook(id: $id) { ${FIELDS} } }`;

const SECRET = /^whsec_[A-Za-z0-9+/]{43}=$/;
const GOOD_URL = "https://example.com/hook";
/** A valid https URL of exactly `length` characters. */
const urlOfLength = (length: number) => {
  const base = "https://example.com/";
  return base + "a".repeat(length - base.length);
};

/** Codes that say "your input is wrong": a resolver's BAD_USER_INPUT or GraphQL's own validation. */
const CLIENT_ERROR_CODES = ["BAD_USER_INPUT", "GRAPHQL_VALIDATION_FAILED"];

interface BadCase {
  name: string;
  input: Record<string, unknown>;
  /** The exact code when the contract fixes it; otherwise any client error code. */
  code?: string;
}

const BAD_URLS: Array<[string, string]> = [
  ["ftp URL", "ftp://example.com/hook"],
  ["javascript: URL", "javascript:alert(1)"],
  ["file: URL", "file:///etc/passwd"],
  ["data: URL", "data:text/plain,hello"],
  ["not a URL", "not a url"],
  ["relative URL", "/hooks/receive"],
  ["empty string", ""],
  ["only spaces", "   "],
  ["user and password", "https://u:p@example.com/hook"],
  ["user name only", "https://u@example.com/hook"],
  ["2049 characters", urlOfLength(2049)],
  ["no host", "http://"],
];

const CREATE_CASES: BadCase[] = [
  ...BAD_URLS.map(([name, url]) => ({ name: `url: ${name}`, input: { url, events: ["agent_created"] }, code: "BAD_USER_INPUT" })),
  { name: "events: empty list", input: { url: GOOD_URL, events: [] }, code: "BAD_USER_INPUT" },
  { name: "events: unknown type", input: { url: GOOD_URL, events: ["agent_exploded"] } },
  { name: "events: unknown among known", input: { url: GOOD_URL, events: ["agent_created", "nope"] } },
  { name: "description: 501 characters", input: { url: GOOD_URL, events: ["agent_created"], description: "d".repeat(501) }, code: "BAD_USER_INPUT" },
];

const UPDATE_CASES: BadCase[] = [
  ...BAD_URLS.map(([name, url]) => ({ name: `url: ${name}`, input: { url }, code: "BAD_USER_INPUT" })),
  { name: "url: null", input: { url: null }, code: "BAD_USER_INPUT" },
  { name: "events: empty list", input: { events: [] }, code: "BAD_USER_INPUT" },
  { name: "events: null", input: { events: null }, code: "BAD_USER_INPUT" },
  { name: "events: unknown type", input: { events: ["agent_exploded"] } },
  { name: "status: unknown value", input: { status: "paused" } },
  { name: "description: 501 characters", input: { description: "d".repeat(501) }, code: "BAD_USER_INPUT" },
  // A valid change next to an invalid one is not applied either.
  { name: "good url with empty events", input: { url: "https://changed.example.com/", events: [] }, code: "BAD_USER_INPUT" },
];

function expectClientError(result: Awaited<ReturnType<TestApp["gql"]>>, code: string | undefined): void {
  expect(result.status).toBeLessThan(500);
  expect(result.errors?.length, JSON.stringify(result)).toBeGreaterThan(0);
  const actual = result.errors?.[0]?.extensions?.code;
  if (code) expect(actual, result.errors?.[0]?.message).toBe(code);
  else expect(CLIENT_ERROR_CODES, `got ${actual}: ${result.errors?.[0]?.message}`).toContain(actual);
}

describeEachMode("webhook validation", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let account: { accountId: string; apiKey: string };

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend, APP_ENV);
    account = await app.createAccount("Validation");
  });
  afterAll(async () => {
    await app?.stop();
    await backend?.dispose();
  });

  const countWebhooks = () => app.handle.app.db.webhook.count();

  describe("createWebhook refuses bad input and writes nothing", () => {
    it.each(CREATE_CASES)("$name", async ({ input, code }) => {
      const before = await countWebhooks();
      const result = await app.gql(account.apiKey, CREATE, { input });
      expectClientError(result, code);
      expect(result.data?.createWebhook ?? null).toBeNull();
      expect(await countWebhooks()).toBe(before);
    });
  });

  describe("updateWebhook refuses bad input and leaves the webhook unchanged", () => {
    let id: string;
    beforeAll(async () => {
      const created = await app.gql(account.apiKey, CREATE, {
        input: { url: "https://original.example.com/hook", events: ["agent_created", "agent_updated"], description: "original" },
      });
      id = created.data.createWebhook.webhook.id;
    });

    it.each(UPDATE_CASES)("$name", async ({ input, code }) => {
      const before = await app.handle.app.db.webhook.findUniqueOrThrow({ where: { id } });
      const result = await app.gql(account.apiKey, UPDATE, { id, input });
      expectClientError(result, code);
      expect(result.data?.updateWebhook ?? null).toBeNull();
      expect(await app.handle.app.db.webhook.findUniqueOrThrow({ where: { id } })).toEqual(before);
    });
  });

  describe("accepted input", () => {
    it("a URL of exactly 2048 characters", async () => {
      const url = urlOfLength(2048);
      expect(url).toHaveLength(2048);
      const result = await app.gql(account.apiKey, CREATE, { input: { url, events: ["agent_created"] } });
      expect(result.errors).toBeUndefined();
      expect(result.data.createWebhook.webhook.url).toBe(url);
    });

    it("a description of exactly 500 characters", async () => {
      const description = "é".repeat(500);
      const result = await app.gql(account.apiKey, CREATE, {
        input: { url: GOOD_URL, events: ["agent_created"], description },
      });
      expect(result.errors).toBeUndefined();
      expect(result.data.createWebhook.webhook.description).toBe(description);
    });

    it("a description of exactly 500 characters outside the Basic Multilingual Plane (emoji)", async () => {
      const description = "🚀".repeat(500);
      expect([...description]).toHaveLength(500);
      const result = await app.gql(account.apiKey, CREATE, {
        input: { url: GOOD_URL, events: ["agent_created"], description },
      });
      expect(result.errors).toBeUndefined();
      expect(result.data?.createWebhook?.webhook.description).toBe(description);
    });

    it("duplicate events are stored once", async () => {
      const result = await app.gql(account.apiKey, CREATE, {
        input: { url: GOOD_URL, events: ["user_logged_in", "agent_created", "user_logged_in", "agent_created"] },
      });
      expect(result.errors).toBeUndefined();
      const events: string[] = result.data.createWebhook.webhook.events;
      expect(events).toHaveLength(2);
      expect([...events].sort()).toEqual(["agent_created", "user_logged_in"]);
      const read = await app.gql(account.apiKey, GET, { id: result.data.createWebhook.webhook.id });
      expect([...read.data.webhook.events].sort()).toEqual(["agent_created", "user_logged_in"]);
    });

    it("every event type of the catalog", async () => {
      const all = [
        "agent_created", "agent_updated", "agent_deleted",
        "message_received", "conversation_updated", "conversation_closed",
        "user_signed_up", "user_logged_in", "user_logged_out",
        "rate_limit_exceeded", "server_error",
      ];
      const result = await app.gql(account.apiKey, CREATE, { input: { url: "http://example.com:8080/x?y=1", events: all } });
      expect(result.errors).toBeUndefined();
      expect([...result.data.createWebhook.webhook.events].sort()).toEqual([...all].sort());
      expect(result.data.createWebhook.webhook.status).toBe("active");
      expect(result.data.createWebhook.webhook.disabledReason).toBeNull();
    });

    it("an update changes url, events and description together", async () => {
      const created = await app.gql(account.apiKey, CREATE, { input: { url: GOOD_URL, events: ["agent_created"] } });
      const { id } = created.data.createWebhook.webhook;
      const result = await app.gql(account.apiKey, UPDATE, {
        id,
        input: { url: "https://new.example.com/path", events: ["server_error"], description: "new" },
      });
      expect(result.errors).toBeUndefined();
      expect(result.data.updateWebhook).toMatchObject({
        id,
        url: "https://new.example.com/path",
        events: ["server_error"],
        description: "new",
      });
      expect((await app.gql(account.apiKey, GET, { id })).data.webhook).toEqual(result.data.updateWebhook);
    });
  });

  describe("secrets", () => {
    it("createWebhook returns a whsec_ secret of 32 random bytes, different for every webhook", async () => {
      const first = await app.gql(account.apiKey, CREATE, { input: { url: GOOD_URL, events: ["agent_created"] } });
      const second = await app.gql(account.apiKey, CREATE, { input: { url: GOOD_URL, events: ["agent_created"] } });
      const s1: string = first.data.createWebhook.secret;
      const s2: string = second.data.createWebhook.secret;
      expect(s1).toMatch(SECRET);
      expect(s2).toMatch(SECRET);
      expect(Buffer.from(s1.slice("whsec_".length), "base64")).toHaveLength(32);
      expect(s1).not.toBe(s2);
    });

    it("the Webhook type has no secret field; only the create and rotate payloads do", async () => {
      const result = await app.gql(account.apiKey, `{
        webhook: __type(name: "Webhook") { fields { name } }
        create: __type(name: "CreateWebhookPayload") { fields { name } }
        rotate: __type(name: "RotateWebhookSecretPayload") { fields { name } }
      }`);
      expect(result.errors).toBeUndefined();
      const names = (t: { fields: Array<{ name: string }> }) => t.fields.map((f) => f.name);
      expect(names(result.data.webhook)).toEqual(expect.arrayContaining(["id", "url", "events", "status"]));
      expect(names(result.data.webhook).filter((n) => /secret/i.test(n))).toEqual([]);
      expect(names(result.data.create)).toContain("secret");
      expect(names(result.data.rotate)).toContain("secret");
      const direct = await app.gql(account.apiKey, `{ webhooks { edges { node { id secret } } } }`);
      expect(direct.errors?.[0]?.extensions?.code).toBe("GRAPHQL_VALIDATION_FAILED");
    });

    it("reading a webhook never shows its secret", async () => {
      const created = await app.gql(account.apiKey, CREATE, { input: { url: GOOD_URL, events: ["agent_created"] } });
      const { secret } = created.data.createWebhook;
      const read = await app.gql(account.apiKey, GET, { id: created.data.createWebhook.webhook.id });
      const list = await app.gql(account.apiKey, `{ webhooks(first: 100) { edges { node { ${FIELDS} } } } }`);
      expect(JSON.stringify(read)).not.toContain(secret.slice("whsec_".length));
      expect(JSON.stringify(list)).not.toContain(secret.slice("whsec_".length));
    });

    it("rotateWebhookSecret returns a new secret each time, and only the webhook's secret changes", async () => {
      const created = await app.gql(account.apiKey, CREATE, { input: { url: GOOD_URL, events: ["agent_created"] } });
      const webhook = created.data.createWebhook.webhook;
      const original: string = created.data.createWebhook.secret;

      const rotated = await app.gql(account.apiKey, ROTATE, { id: webhook.id });
      expect(rotated.errors).toBeUndefined();
      const next: string = rotated.data.rotateWebhookSecret.secret;
      expect(next).toMatch(SECRET);
      expect(next).not.toBe(original);
      expect(rotated.data.rotateWebhookSecret.webhook).toMatchObject({
        id: webhook.id,
        url: webhook.url,
        events: webhook.events,
        status: "active",
      });
      const row = await app.handle.app.db.webhook.findUniqueOrThrow({ where: { id: webhook.id } });
      expect(row.secret).toBe(next);

      const again = await app.gql(account.apiKey, ROTATE, { id: webhook.id });
      const third: string = again.data.rotateWebhookSecret.secret;
      expect(third).toMatch(SECRET);
      expect(new Set([original, next, third]).size).toBe(3);
    });

    it("rotating an unknown webhook is NOT_FOUND", async () => {
      const result = await app.gql(account.apiKey, ROTATE, { id: "wh_doesnotexist" });
      expect(result.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    });
  });

  describe("status", () => {
    it("disabled then active: the webhook is active again and disabledReason is cleared", async () => {
      const created = await app.gql(account.apiKey, CREATE, { input: { url: GOOD_URL, events: ["agent_created"] } });
      const { id } = created.data.createWebhook.webhook;

      const disabled = await app.gql(account.apiKey, UPDATE, { id, input: { status: "disabled" } });
      expect(disabled.errors).toBeUndefined();
      expect(disabled.data.updateWebhook.status).toBe("disabled");
      expect(disabled.data.updateWebhook.disabledReason).toEqual(expect.any(String));
      expect((await app.gql(account.apiKey, GET, { id })).data.webhook.status).toBe("disabled");

      const active = await app.gql(account.apiKey, UPDATE, { id, input: { status: "active" } });
      expect(active.errors).toBeUndefined();
      expect(active.data.updateWebhook.status).toBe("active");
      expect(active.data.updateWebhook.disabledReason).toBeNull();
      const read = (await app.gql(account.apiKey, GET, { id })).data.webhook;
      expect(read.status).toBe("active");
      expect(read.disabledReason).toBeNull();
    });

    it("a webhook disabled by the service (with a reason) is re-enabled by status: active", async () => {
      const created = await app.gql(account.apiKey, CREATE, { input: { url: GOOD_URL, events: ["agent_created"] } });
      const { id } = created.data.createWebhook.webhook;
      await app.handle.app.db.webhook.update({
        where: { id },
        data: { status: "disabled", disabledReason: "the final delivery attempt failed" },
      });
      expect((await app.gql(account.apiKey, GET, { id })).data.webhook).toMatchObject({
        status: "disabled",
        disabledReason: "the final delivery attempt failed",
      });
      const active = await app.gql(account.apiKey, UPDATE, { id, input: { status: "active" } });
      expect(active.data.updateWebhook).toMatchObject({ status: "active", disabledReason: null });
    });
  });
});
