import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";

/** Many requests with one key in quick succession: the API rate limit is not under test here. */
const APP_ENV = { API_RATE_LIMIT: "100000/s" };

const TOTAL = 120;
const CREATE = `mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { webhook { id } } }`;
const PAGE = `query ($first: Int, $after: String, $status: WebhookStatus) {
  webhooks(first: $first, after: $after, status: $status) {
    edges { cursor node { id status description } }
    pageInfo { hasNextPage endCursor }
  }
}`;

interface Page {
  edges: Array<{ cursor: string; node: { id: string; status: string; description: string } }>;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

describeEachMode("webhook pagination", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let key: string;
  /** Ids in the order they were created. */
  const created: string[] = [];
  /** Every third webhook (by creation) is disabled. */
  const disabled = new Set<string>();

  async function page(variables: Record<string, unknown>): Promise<Page> {
    const result = await app.gql(key, PAGE, variables);
    expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
    return result.data.webhooks as Page;
  }

  /** Follows endCursor until hasNextPage is false; returns the ids in the order seen and the page sizes. */
  async function walk(first: number, status?: string): Promise<{ ids: string[]; sizes: number[] }> {
    const ids: string[] = [];
    const sizes: number[] = [];
    let after: string | null = null;
    for (let guard = 0; guard < 1000; guard++) {
      const current = await page({ first, after, ...(status ? { status } : {}) });
      ids.push(...current.edges.map((e) => e.node.id));
      sizes.push(current.edges.length);
      if (current.edges.length > 0) expect(current.pageInfo.endCursor).toBe(current.edges.at(-1)!.cursor);
      if (!current.pageInfo.hasNextPage) return { ids, sizes };
      after = current.pageInfo.endCursor;
      expect(after).toEqual(expect.any(String));
    }
    throw new Error("pagination never ended");
  }

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend, APP_ENV);
    ({ apiKey: key } = await app.createAccount("Pages"));
    // Sequential, so the creation order is known.
    for (let i = 0; i < TOTAL; i++) {
      const result = await app.gql(key, CREATE, {
        input: { url: `https://example.com/hook/${i}`, events: ["agent_created"], description: `#${i}` },
      });
      if (!result.data) throw new Error(JSON.stringify(result.errors));
      created.push(result.data.createWebhook.webhook.id);
    }
    for (let i = 0; i < TOTAL; i += 3) {
      const id = created[i]!;
      const result = await app.gql(key, `mutation ($id: ID!) { updateWebhook(id: $id, input: {status: disabled}) { id } }`, { id });
      if (!result.data) throw new Error(JSON.stringify(result.errors));
      disabled.add(id);
    }
    // Another account's webhooks must not show up in these pages.
    const other = await app.createAccount("Other");
    for (let i = 0; i < 3; i++) {
      await app.gql(other.apiKey, CREATE, { input: { url: `https://other.example.com/${i}`, events: ["agent_created"] } });
    }
  });
  afterAll(async () => {
    await app?.stop();
    await backend?.dispose();
  });

  it("ids made one after another sort in creation order", () => {
    expect(new Set(created).size).toBe(TOTAL);
    expect([...created].sort()).toEqual(created);
  });

  it("pages of 25 list all 120 webhooks exactly once, newest first", async () => {
    const { ids, sizes } = await walk(25);
    expect(sizes).toEqual([25, 25, 25, 25, 20]);
    expect(ids).toHaveLength(TOTAL);
    expect(new Set(ids).size).toBe(TOTAL);
    expect(ids).toEqual([...created].reverse());
    for (let i = 1; i < ids.length; i++) expect(ids[i - 1]! > ids[i]!).toBe(true);
  });

  it("the first page has the newest webhook, with its data", async () => {
    const first = await page({ first: 3 });
    expect(first.edges.map((e) => e.node.description)).toEqual([`#${TOTAL - 1}`, `#${TOTAL - 2}`, `#${TOTAL - 3}`]);
    expect(first.pageInfo.hasNextPage).toBe(true);
  });

  it("a page size that divides the total ends with hasNextPage false and no empty extra page", async () => {
    const { ids, sizes } = await walk(40);
    expect(sizes).toEqual([40, 40, 40]);
    expect(ids).toEqual([...created].reverse());
  });

  it("the status filter pages through exactly the disabled webhooks, newest first", async () => {
    const { ids } = await walk(25, "disabled");
    const expected = [...created].reverse().filter((id) => disabled.has(id));
    expect(expected).toHaveLength(40);
    expect(ids).toEqual(expected);
    const statuses = (await page({ first: 100, status: "disabled" })).edges.map((e) => e.node.status);
    expect(new Set(statuses)).toEqual(new Set(["disabled"]));
  });

  it("the status filter pages through exactly the active webhooks, newest first", async () => {
    const { ids } = await walk(25, "active");
    const expected = [...created].reverse().filter((id) => !disabled.has(id));
    expect(expected).toHaveLength(80);
    expect(ids).toEqual(expected);
  });

  it("without first, a page still has a bounded size and continues where it left off", async () => {
    const firstPage = await page({});
    expect(firstPage.edges.length).toBeGreaterThan(0);
    expect(firstPage.edges.length).toBeLessThan(TOTAL);
    expect(firstPage.pageInfo.hasNextPage).toBe(true);
    const next = await page({ after: firstPage.pageInfo.endCursor });
    expect(next.edges[0]!.node.id).toBe(created[TOTAL - 1 - firstPage.edges.length]);
  });

  it("a webhook created while paging does not shift the pages already being read", async () => {
    const firstPage = await page({ first: 25 });
    const extra = await app.gql(key, CREATE, { input: { url: "https://example.com/late", events: ["agent_created"] } });
    const lateId: string = extra.data.createWebhook.webhook.id;
    try {
      const second = await page({ first: 25, after: firstPage.pageInfo.endCursor });
      expect(second.edges.map((e) => e.node.id)).toEqual([...created].reverse().slice(25, 50));
      expect(lateId > created.at(-1)!).toBe(true);
    } finally {
      await app.gql(key, `mutation ($id: ID!) { deleteWebhook(id: $id) { id } }`, { id: lateId });
    }
  });

  it("a negative page size is refused as bad input", async () => {
    const result = await app.gql(key, PAGE, { first: -1 });
    expect(result.data?.webhooks ?? null).toBeNull();
    expect(result.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
  });

  it("a cursor that is not one the server gave is refused as bad input", async () => {
    const result = await app.gql(key, PAGE, { first: 5, after: "not-a-cursor" });
    expect(result.data?.webhooks ?? null).toBeNull();
    expect(result.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
  });
});
