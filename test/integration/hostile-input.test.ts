import { request as httpRequest } from "node:http";
import { Agent, fetch as undiciFetch } from "undici";
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";

/**
 * Hostile and malformed requests (CONTRACT §4, §5, §7): each gets a clear 4xx or GraphQL error,
 * never a 5xx; the server keeps answering; and nothing is written to the database.
 */

const MIB = 1024 * 1024;

interface Answer {
  status: number;
  text: string;
  json: any;
}

/**
 * fetch on a connection of its own (a fresh undici Agent), with the request named in the error
 * when the connection fails. A fresh connection keeps a large upload from landing on a pooled
 * keep-alive socket the server is just closing.
 */
async function fetchNamed(name: string, url: string, init: RequestInit): Promise<Response> {
  const dispatcher = new Agent();
  try {
    const response = await undiciFetch(url, { ...(init as object), dispatcher } as never);
    const body = await response.arrayBuffer();
    return new Response(body, { status: response.status, headers: response.headers as unknown as HeadersInit });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`${name}: ${(error as Error).message} (${cause?.code ?? ""} ${cause?.message ?? ""})`);
  } finally {
    await dispatcher.close();
  }
}

async function read(response: Response): Promise<Answer> {
  const text = await response.text();
  let json: unknown;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json };
}

/** A body streamed in 64 KiB chunks with no content-length (chunked transfer encoding). */
function streamOf(size: number): ReadableStream<Uint8Array> {
  let left = size;
  return new ReadableStream({
    pull(controller) {
      if (left <= 0) {
        controller.close();
        return;
      }
      const n = Math.min(left, 64 * 1024);
      left -= n;
      controller.enqueue(new Uint8Array(n).fill(0x20));
    },
  });
}

/** POSTs `size` bytes with node:http, chunked (no content-length), and returns the answer. */
function chunkedPost(url: string, headers: Record<string, string>, size: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    // agent: false: a connection of its own, never a pooled keep-alive socket.
    const req = httpRequest(url, { method: "POST", headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, text, json });
      });
      res.on("error", reject);
    });
    req.on("error", (error) => reject(new Error(`chunked POST ${url}: ${error.message}`)));
    expect(req.getHeader("content-length")).toBeUndefined();
    let left = size;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, 64 * 1024);
        left -= n;
        if (!req.write(Buffer.alloc(n, 0x20))) {
          req.once("drain", pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

describeEachMode("hostile input", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let apiKey: string;
  let accountId: string;
  let webhookId: string;
  let before: Record<string, number>;

  /** Row counts of every table: nothing a hostile request does may change them. */
  async function snapshot(): Promise<Record<string, number>> {
    const db = app.handle.app.db;
    return {
      accounts: await db.account.count(),
      apiKeys: await db.apiKey.count(),
      webhooks: await db.webhook.count(),
      events: await db.event.count(),
      deliveries: await db.delivery.count(),
      attempts: await db.deliveryAttempt.count(),
    };
  }

  async function post(path: string, body: BodyInit, headers: Record<string, string> = {}, init: RequestInit = {}) {
    const response = await fetch(`${app.baseUrl}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, ...headers },
      body,
      ...init,
    });
    return read(response);
  }

  const graphqlJson = (payload: unknown) => post("/graphql", JSON.stringify(payload), { "content-type": "application/json" });

  /** A client error that is not a server failure: a 4xx, or a GraphQL answer with errors. */
  function expectRefused(answer: Answer, context: string): void {
    expect(answer.status, `${context}: ${answer.text.slice(0, 300)}`).toBeLessThan(500);
    if (answer.status === 200) {
      expect(answer.json?.errors?.length, `${context}: ${answer.text.slice(0, 300)}`).toBeGreaterThan(0);
      expect(answer.json?.data ?? null, context).toBeNull();
    } else {
      expect(answer.status, context).toBeGreaterThanOrEqual(400);
    }
    expect(answer.text).not.toMatch(/INTERNAL_SERVER_ERROR|Unexpected error/);
  }

  /** The server still answers: health, GraphQL and REST. */
  async function expectAlive(): Promise<void> {
    expect((await fetch(`${app.baseUrl}/healthz`)).status).toBe(200);
    const viewer = await app.gql(apiKey, `{ viewer { id } }`);
    expect(viewer.data?.viewer?.id).toBe(accountId);
    const list = await fetch(`${app.baseUrl}/api/v1/webhooks`, { headers: { authorization: `Bearer ${apiKey}` } });
    expect(list.status).toBe(200);
    await list.arrayBuffer();
  }

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend);
    ({ apiKey, accountId } = await app.createAccount("Hostile"));
    const created = await app.gql(
      apiKey,
      `mutation { createWebhook(input: { url: "http://127.0.0.1:9/hostile", events: [user_signed_up] }) { webhook { id } } }`,
    );
    webhookId = created.data.createWebhook.webhook.id;
  });
  afterAll(async () => {
    await app?.stop();
    await backend?.dispose();
  });
  beforeEach(async () => {
    before = await snapshot();
  });

  async function expectNoChange(): Promise<void> {
    expect(await snapshot()).toEqual(before);
    await expectAlive();
  }

  it("malformed JSON: /graphql 400, REST 400 {error}", async () => {
    for (const body of ["{not json", "", "{\"query\": ", "null", "[", "\u0000\u0001"]) {
      const graphql = await post("/graphql", body, { "content-type": "application/json" });
      expectRefused(graphql, `graphql ${JSON.stringify(body)}`);
      expect(graphql.status, JSON.stringify(body)).toBe(400);
    }
    for (const path of ["/api/v1/webhooks", "/api/v1/events", `/api/v1/webhooks/${webhookId}`]) {
      for (const body of ["{not json", "", "{\"url\": ", "\"just a string\"", "null", "[1,2]", "42"]) {
        const method = path.endsWith(webhookId) ? "PATCH" : "POST";
        const answer = await read(
          await fetch(`${app.baseUrl}${path}`, {
            method,
            headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
            body,
          }),
        );
        expect(answer.status, `${method} ${path} ${JSON.stringify(body)}: ${answer.text}`).toBe(400);
        expect(Object.keys(answer.json)).toEqual(["error"]);
      }
    }
    await expectNoChange();
  });

  it("wrong content types: REST 415 {error}, /graphql 4xx", async () => {
    const json = JSON.stringify({ url: "http://127.0.0.1:9/ct/", events: ["agent_created"] });
    const types = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml", ""];
    for (const type of types) {
      const headers: Record<string, string> = type ? { "content-type": type } : {};
      const body = type === "application/x-www-form-urlencoded" ? "url=http%3A%2F%2F127.0.0.1%3A9%2Fct%2F&events=agent_created" : json;
      const answer = await post("/api/v1/webhooks", type ? body : new Blob([body]), headers);
      expect(answer.status, `REST ${type || "(none)"}: ${answer.text}`).toBe(415);
      expect(Object.keys(answer.json)).toEqual(["error"]);
    }

    const mutation = `mutation { createWebhook(input: { url: "http://127.0.0.1:9/ct/", events: [agent_created] }) { webhook { id } } }`;
    const plain = await post("/graphql", JSON.stringify({ query: mutation }), { "content-type": "text/plain" });
    expect(plain.status, `graphql text/plain: ${plain.text}`).toBeGreaterThanOrEqual(400);
    expect(plain.status).toBeLessThan(500);
    const form = await post("/graphql", `query=${encodeURIComponent(mutation)}`, {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(form.status, `graphql x-www-form-urlencoded: ${form.text}`).toBeGreaterThanOrEqual(400);
    expect(form.status).toBeLessThan(500);
    await expectNoChange();
  });

  it("bodies over 1 MiB get 413, declared or streamed, on /graphql and REST", async () => {
    const tooBig = "x".repeat(MIB + 1);
    for (const path of ["/graphql", "/api/v1/webhooks", "/api/v1/events", `/api/v1/webhooks/${webhookId}`]) {
      const method = path.endsWith(webhookId) ? "PATCH" : "POST";
      const headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };

      const declared = await read(await fetchNamed(`${method} ${path} declared`, `${app.baseUrl}${path}`, { method, headers, body: tooBig }));
      expect(declared.status, `${method} ${path} declared`).toBe(413);
      if (path.startsWith("/api")) expect(Object.keys(declared.json)).toEqual(["error"]);

      const streamed = await read(
        await fetchNamed(`${method} ${path} streamed`, `${app.baseUrl}${path}`, {
          method,
          headers,
          body: streamOf(MIB + 1),
          duplex: "half",
        } as RequestInit),
      );
      expect(streamed.status, `${method} ${path} streamed`).toBe(413);
      if (path.startsWith("/api")) expect(Object.keys(streamed.json)).toEqual(["error"]);

      const chunked = await chunkedPost(`${app.baseUrl}${path}`, headers, MIB + 1);
      if (method === "POST") expect(chunked.status, `${path} chunked node:http`).toBe(413);
    }
    // A much larger stream is cut off too, without the server buffering it all.
    const huge = await read(
      await fetchNamed("8 MiB stream", `${app.baseUrl}/api/v1/events`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: streamOf(8 * MIB),
        duplex: "half",
      } as RequestInit),
    );
    expect(huge.status).toBe(413);
    await expectNoChange();
  });

  it("a body of exactly 1 MiB is not refused for its size", async () => {
    const prefix = `{"event":"agent_updated","data":{"agent_id":"agent_exact"}`;
    const body = prefix + " ".repeat(MIB - prefix.length - 1) + "}";
    expect(Buffer.byteLength(body)).toBe(MIB);
    const answer = await post("/api/v1/events", body, { "content-type": "application/json" });
    expect(answer.status, answer.text.slice(0, 300)).toBe(202);
    expect(answer.json.data).toEqual({ agent_id: "agent_exact" });
    expect(await app.handle.app.db.event.count()).toBe(before.events! + 1);
  });

  it("a GraphQL document 20 levels deep is refused and runs nothing", async () => {
    // webhooks { edges { node { deliveries { edges { node { webhook { deliveries … id } … }
    const chain = ["webhooks", "edges", "node"];
    while (chain.length < 19) chain.push(...["deliveries", "edges", "node", "webhook"]);
    expect(chain).toHaveLength(19);
    const nest = (fields: string[]) => fields.reduceRight((inner, field) => `${field} { ${inner} }`, "id");
    const query = `{ ${nest(chain)} }`;
    const answer = await graphqlJson({ query });
    expectRefused(answer, "deep query (depth 20)");
    expect(answer.json.errors[0].message).toMatch(/depth|cost/i);

    // The same depth under a mutation: nothing is created.
    const mutation = `mutation { createWebhook(input: { url: "http://127.0.0.1:9/deep/", events: [agent_created] }) {
      ${nest(["webhook", ...chain.slice(3, 3 + 16)])} } }`;
    const deepMutation = await graphqlJson({ query: mutation });
    expectRefused(deepMutation, "deep mutation");
    await expectNoChange();
  });

  it("an alias bomb (100 aliases) is refused and runs nothing", async () => {
    // 100 deletions of the same webhook: if any ran, the webhook would be gone.
    const aliases = Array.from({ length: 100 }, (_, i) => `a${i}: deleteWebhook(id: "${webhookId}") { id }`).join("\n");
    const answer = await graphqlJson({ query: `mutation { ${aliases} }` });
    expectRefused(answer, "alias bomb");
    expect(answer.json.errors[0].message).toMatch(/alias/i);

    const readAliases = Array.from({ length: 100 }, (_, i) => `v${i}: viewer { id }`).join(" ");
    expectRefused(await graphqlJson({ query: `{ ${readAliases} }` }), "read alias bomb");
    await expectNoChange();
  });

  it("a document over the token limit is refused", async () => {
    const fields = Array.from({ length: 2_100 }, () => "id").join(" ");
    const answer = await graphqlJson({
      query: `mutation { createWebhook(input: { url: "http://127.0.0.1:9/tokens/", events: [agent_created] }) { webhook { ${fields} } } }`,
    });
    expectRefused(answer, "tokens");
    expect(answer.json.errors[0].message).toMatch(/token/i);
    await expectNoChange();
  });

  it("a field with many directives is refused", async () => {
    const directives = Array.from({ length: 50 }, () => "@include(if: true)").join(" ");
    const answer = await graphqlJson({
      query: `mutation { createWebhook(input: { url: "http://127.0.0.1:9/dir/", events: [agent_created] }) { secret ${directives} } }`,
    });
    expectRefused(answer, "directives");
    expect(answer.json.errors[0].message).toMatch(/directive/i);
    await expectNoChange();
  });

  it("a batch of 11 operations is refused as a whole", async () => {
    const batch = Array.from({ length: 11 }, (_, i) => ({
      query: `mutation { createWebhook(input: { url: "http://127.0.0.1:9/batch/${i}", events: [agent_created] }) { secret } }`,
    }));
    const answer = await graphqlJson(batch);
    expect(answer.status, answer.text).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    expect(answer.text).toMatch(/batch/i);
    await expectNoChange();

    // Ten is allowed (the limit), so the limit is what refused eleven.
    const ten = await graphqlJson(Array.from({ length: 10 }, () => ({ query: "{ viewer { id } }" })));
    expect(ten.status).toBe(200);
    expect(ten.json).toHaveLength(10);
  });

  it("publishEvent with bad data is BAD_USER_INPUT (GraphQL) and 400 (REST), storing no event", async () => {
    const PUBLISH = `mutation ($input: PublishEventInput!) { publishEvent(input: $input) { id } }`;
    const blob = "x".repeat(300 * 1024);
    const cases: Array<[string, { type: string; data: unknown }]> = [
      ["data missing required fields", { type: "agent_created", data: { agent_id: "a" } }],
      ["message_received missing conversation_id", { type: "message_received", data: { agent_id: "a", user_id: "u", message: "m" } }],
      ["required field null", { type: "user_logged_in", data: { user_id: null } }],
      ["data as an array", { type: "agent_deleted", data: [{ agent_id: "a" }] }],
      ["data as a string", { type: "agent_deleted", data: "agent_id" }],
      ["data over 256 KiB", { type: "agent_created", data: { agent_id: "a", name: "n", created_by: "u", blob } }],
    ];
    for (const [name, input] of cases) {
      const viaGraphql = await graphqlJson({ query: PUBLISH, variables: { input } });
      expect(viaGraphql.status, `${name}: ${viaGraphql.text.slice(0, 300)}`).toBeLessThan(500);
      expect(viaGraphql.json.data?.publishEvent ?? null, name).toBeNull();
      expect(viaGraphql.json.errors?.[0]?.extensions?.code, `${name}: ${viaGraphql.text.slice(0, 300)}`).toBe("BAD_USER_INPUT");

      const viaRest = await post("/api/v1/events", JSON.stringify({ event: input.type, data: input.data }), {
        "content-type": "application/json",
      });
      expect(viaRest.status, `${name}: ${viaRest.text.slice(0, 300)}`).toBe(400);
      expect(Object.keys(viaRest.json)).toEqual(["error"]);
    }
    expect(await app.handle.app.db.event.count({ where: { type: "server_error" } })).toBe(0);
    await expectNoChange();
  });

  it("publishEvent with an unknown event type or null data is BAD_USER_INPUT (variables), a validation error (inline) and 400 (REST), storing no event", async () => {
    const PUBLISH = `mutation ($input: PublishEventInput!) { publishEvent(input: $input) { id } }`;
    const viaRest = await post("/api/v1/events", JSON.stringify({ event: "agent_exploded", data: { agent_id: "a" } }), {
      "content-type": "application/json",
    });
    expect(viaRest.status, viaRest.text).toBe(400);
    expect(viaRest.json.error).toMatch(/agent_exploded/);

    // An unknown type written into the document itself is refused by GraphQL validation.
    const inline = await graphqlJson({ query: `mutation { publishEvent(input: { type: agent_exploded, data: {} }) { id } }` });
    expectRefused(inline, "inline unknown type");
    expect(["GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"]).toContain(inline.json.errors[0].extensions?.code);

    // The usual way, through variables: the client's mistake, not a server failure.
    const badVariables: Array<Record<string, unknown>> = [
      { type: "agent_exploded", data: { agent_id: "a" } },
      { type: "", data: { agent_id: "a" } },
      { type: "AGENT_DELETED", data: { agent_id: "a" } },
      { type: 42, data: { agent_id: "a" } },
      { type: "agent_deleted", data: null },
      { type: "agent_deleted" },
    ];
    for (const input of badVariables) {
      const viaGraphql = await graphqlJson({ query: PUBLISH, variables: { input } });
      expect(viaGraphql.status, viaGraphql.text).toBeLessThan(500);
      expect(viaGraphql.json.data?.publishEvent ?? null).toBeNull();
      expect(viaGraphql.json.errors?.[0]?.extensions?.code, `${JSON.stringify(input)}: ${viaGraphql.text}`).toBe("BAD_USER_INPUT");
    }
    // …so no server_error event is raised for it either.
    expect(await app.handle.app.db.event.count({ where: { type: "server_error" } })).toBe(0);
    await expectNoChange();
  });
});
