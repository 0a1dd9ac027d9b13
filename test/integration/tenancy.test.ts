import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { connectWs } from "../helpers/ws.ts";

/** Many requests with one key in quick succession: the API rate limit is not under test here. */
const APP_ENV = { API_RATE_LIMIT: "100000/s" };

const FIELDS = `id url events status description disabledReason createdAt updatedAt`;
const CREATE = `mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { ${FIELDS} } secret } }`;
const GET = `query ($id: ID!) { webhook(id: $id) { ${FIELDS} } }`;
const LIST = `query ($after: String) { webhooks(first: 100, after: $after) {
  edges { cursor node { ${FIELDS} } } pageInfo { hasNextPage endCursor } } }`;
const UPDATE = `mutation ($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { ${FIELDS} } }`;
const DELETE = `mutation ($id: ID!) { deleteWebhook(id: $id) { id } }`;
const ROTATE = `mutation ($id: ID!) { rotateWebhookSecret(id: $id) { webhook { id } secret } }`;

interface Webhook {
  id: string;
  url: string;
  events: string[];
  status: string;
  description: string | null;
  disabledReason: string | null;
  createdAt: string;
  updatedAt: string;
}

describeEachMode("tenancy", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let a: { accountId: string; apiKey: string };
  let b: { accountId: string; apiKey: string };
  let aHook: Webhook;
  let aSecret: string;
  let bHook: Webhook;

  /** A's webhook as A sees it, and its row (with the secret) as stored. */
  async function aState() {
    const seen = await app.gql(a.apiKey, GET, { id: aHook.id });
    const row = await app.handle.app.db.webhook.findUniqueOrThrow({ where: { id: aHook.id } });
    return { seen: seen.data.webhook as Webhook, secret: row.secret, previousSecret: row.previousSecret };
  }

  async function expectAUnchanged() {
    const now = await aState();
    expect(now.seen).toEqual(aHook);
    expect(now.secret).toBe(aSecret);
    expect(now.previousSecret).toBeNull();
  }

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend, APP_ENV);
    a = await app.createAccount("Tenant A");
    b = await app.createAccount("Tenant B");
    const createdA = await app.gql(a.apiKey, CREATE, {
      input: { url: "https://a.example.com/hook", events: ["agent_created", "user_logged_in"], description: "A's" },
    });
    aHook = createdA.data.createWebhook.webhook;
    aSecret = createdA.data.createWebhook.secret;
    const createdB = await app.gql(b.apiKey, CREATE, {
      input: { url: "https://b.example.com/hook", events: ["server_error"] },
    });
    bHook = createdB.data.createWebhook.webhook;
  });
  afterAll(async () => {
    await app?.stop();
    await backend?.dispose();
  });

  it("B reading A's webhook by id gets nothing of A's (null or NOT_FOUND)", async () => {
    const result = await app.gql(b.apiKey, GET, { id: aHook.id });
    expect(result.data?.webhook ?? null).toBeNull();
    if (result.errors) expect(result.errors[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(JSON.stringify(result)).not.toContain("a.example.com");
    // A itself does read it.
    expect((await app.gql(a.apiKey, GET, { id: aHook.id })).data.webhook).toEqual(aHook);
  });

  it("B updating A's webhook gets NOT_FOUND and changes nothing", async () => {
    const result = await app.gql(b.apiKey, UPDATE, {
      id: aHook.id,
      input: { url: "https://evil.example.com/", events: ["server_error"], description: "pwned", status: "disabled" },
    });
    expect(result.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(result.data?.updateWebhook ?? null).toBeNull();
    expect(JSON.stringify(result)).not.toContain("a.example.com");
    await expectAUnchanged();
  });

  it("B rotating A's secret gets NOT_FOUND and A's secret stays", async () => {
    const result = await app.gql(b.apiKey, ROTATE, { id: aHook.id });
    expect(result.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(result.data?.rotateWebhookSecret ?? null).toBeNull();
    await expectAUnchanged();
  });

  it("B deleting A's webhook gets NOT_FOUND and it is still there", async () => {
    const result = await app.gql(b.apiKey, DELETE, { id: aHook.id });
    expect(result.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    expect(result.data?.deleteWebhook ?? null).toBeNull();
    await expectAUnchanged();
  });

  it("B's list never contains A's webhooks, and A's list never contains B's", async () => {
    const bList = await app.gql(b.apiKey, LIST);
    expect(bList.errors).toBeUndefined();
    expect(bList.data.webhooks.edges.map((e: { node: Webhook }) => e.node)).toEqual([bHook]);
    const aList = await app.gql(a.apiKey, LIST);
    expect(aList.data.webhooks.edges.map((e: { node: Webhook }) => e.node)).toEqual([aHook]);
  });

  it("a cursor taken from A's list shows B only B's webhooks", async () => {
    // A second webhook for A, made after B's, so A's cursor sorts above B's webhook.
    const second = await app.gql(a.apiKey, CREATE, { input: { url: "https://a.example.com/two", events: ["agent_updated"] } });
    const aPage = await app.gql(a.apiKey, `{ webhooks(first: 1) { edges { cursor node { id } } } }`);
    const cursor = aPage.data.webhooks.edges[0].cursor;
    const bPage = await app.gql(b.apiKey, LIST, { after: cursor });
    expect(bPage.errors).toBeUndefined();
    const ids = bPage.data.webhooks.edges.map((e: { node: Webhook }) => e.node.id);
    expect(ids).not.toContain(aHook.id);
    expect(ids).not.toContain(second.data.createWebhook.webhook.id);
    await app.gql(a.apiKey, DELETE, { id: second.data.createWebhook.webhook.id });
  });

  it("the admin key acting for B sees B's webhooks, not A's", async () => {
    const asB = await app.gql(app.adminKey, LIST, undefined, { "x-account-id": b.accountId });
    expect(asB.data.webhooks.edges.map((e: { node: Webhook }) => e.node.id)).toEqual([bHook.id]);
    const read = await app.gql(app.adminKey, GET, { id: aHook.id }, { "x-account-id": b.accountId });
    expect(read.data?.webhook ?? null).toBeNull();
    const update = await app.gql(app.adminKey, UPDATE, { id: aHook.id, input: { description: "admin as B" } }, {
      "x-account-id": b.accountId,
    });
    expect(update.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    await expectAUnchanged();
  });

  it("over WebSocket, B sees only B's webhooks and cannot read A's", async () => {
    const ws = connectWs(app.wsUrl, { authorization: `Bearer ${b.apiKey}` });
    try {
      const list = await ws.run(LIST);
      expect(list.results[0]?.data?.webhooks.edges.map((e: { node: Webhook }) => e.node.id)).toEqual([bHook.id]);
      const read = await ws.run(GET, { id: aHook.id });
      expect(read.results[0]?.data?.webhook ?? null).toBeNull();
      expect(JSON.stringify(read)).not.toContain("a.example.com");
    } finally {
      await ws.dispose();
    }
  });
});
