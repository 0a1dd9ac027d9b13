import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, TEST_LOG_DIR, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { startReceiver, type Receiver, type Responder } from "../helpers/receiver.ts";
import { untilValue as until } from "../helpers/verify.ts";

/**
 * CONTRACT §2 and §3: API keys and webhook secrets are shown once and never written anywhere
 * else. This file runs a busy session at LOG_LEVEL=debug — keys, webhooks, rotation, events,
 * deliveries that succeed and fail, 401s, a throttled key, WebSockets — and then searches the
 * logs and the delivery log for every secret it saw. It is self-contained: file order is not
 * guaranteed, so it makes its own secrets and scans whatever logs exist when it runs.
 */

const RATE = 20;

interface Secret {
  what: string;
  value: string;
}

/** Answers with a JSON echo of the request headers it got (signatures included). */
const echoHeaders =
  (status: number): Responder =>
  (request, _n, res) =>
    void res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(request.headers));

/** Every way a secret could be written: as is, and the base64 part of a `whsec_` secret on its own. */
function needles(secrets: Secret[]): Secret[] {
  return secrets.flatMap((secret) =>
    secret.value.startsWith("whsec_")
      ? [secret, { what: `${secret.what} (base64 part)`, value: secret.value.slice("whsec_".length) }]
      : [secret],
  );
}

function findLeaks(text: string, secrets: Secret[]): string[] {
  return needles(secrets)
    .filter((secret) => text.includes(secret.value))
    .map((secret) => {
      const at = text.indexOf(secret.value);
      return `${secret.what} at …${text.slice(Math.max(0, at - 200), at + secret.value.length + 50)}…`;
    });
}

describeEachMode("secrets never reach logs", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let echo: Receiver;
  let failing: Receiver;
  const secrets: Secret[] = [];
  const webhookIds: string[] = [];
  let stopped = false;

  async function rest(key: string, method: string, urlPath: string, body?: unknown) {
    const response = await fetch(`${app.baseUrl}${urlPath}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, json: text ? JSON.parse(text) : undefined };
  }

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend, { LOG_LEVEL: "debug", API_RATE_LIMIT: `${RATE}/s` });
    echo = await startReceiver(echoHeaders(200));
    failing = await startReceiver(echoHeaders(500));
    secrets.push({ what: "admin key", value: app.adminKey });
  });
  afterAll(async () => {
    if (!stopped) await app?.stop();
    await echo?.close();
    await failing?.close();
    await backend?.dispose();
  });

  it("a busy session: keys, webhooks, rotation, events, deliveries, 401s, throttling, WebSockets", async () => {
    // Accounts and keys.
    const account = await app.createAccount("Secretive");
    secrets.push({ what: "first API key", value: account.apiKey });
    const newKey = async (name: string) => {
      const created = await app.gql(app.adminKey, `mutation ($a: ID!, $n: String) { createApiKey(accountId: $a, name: $n) { apiKey } }`, {
        a: account.accountId,
        n: name,
      });
      expect(created.errors).toBeUndefined();
      const key = created.data.createApiKey.apiKey as string;
      secrets.push({ what: `API key ${name}`, value: key });
      return key;
    };
    const restKey = await newKey("rest");
    const throttledKey = await newKey("throttled");
    const selfMade = await app.gql(account.apiKey, `mutation { createApiKey(name: "self") { apiKey } }`);
    secrets.push({ what: "self-made API key", value: selfMade.data.createApiKey.apiKey });
    for (const secret of secrets) if (secret.what.includes("key") && secret.what !== "admin key") expect(secret.value).toMatch(/^sk_/);

    // Webhooks (GraphQL and REST), one of them rotated.
    const created = await app.gql(
      account.apiKey,
      `mutation ($url: String!) { createWebhook(input: { url: $url, events: [agent_created, message_received] }) { webhook { id } secret } }`,
      { url: echo.url },
    );
    const echoHook = created.data.createWebhook.webhook.id as string;
    secrets.push({ what: "echo webhook secret (before rotation)", value: created.data.createWebhook.secret });
    const rotated = await app.gql(account.apiKey, `mutation ($id: ID!) { rotateWebhookSecret(id: $id) { secret } }`, { id: echoHook });
    expect(rotated.errors).toBeUndefined();
    secrets.push({ what: "echo webhook secret (after rotation)", value: rotated.data.rotateWebhookSecret.secret });

    const failingHook = await rest(restKey, "POST", "/api/v1/webhooks", { url: failing.url, events: ["agent_created"] });
    expect(failingHook.status).toBe(201);
    secrets.push({ what: "failing webhook secret", value: failingHook.json.secret });
    const idleHook = await rest(restKey, "POST", "/api/v1/webhooks", { url: "http://127.0.0.1:9/idle", events: ["user_logged_out"] });
    secrets.push({ what: "idle webhook secret", value: idleHook.json.secret });
    webhookIds.push(echoHook, failingHook.json.id, idleHook.json.id);
    for (const secret of secrets.filter((s) => s.what.includes("webhook secret"))) expect(secret.value).toMatch(/^whsec_/);

    // Events over GraphQL and REST: deliveries that succeed (echo) and fail until disabled.
    const published = await app.gql(
      account.apiKey,
      `mutation { publishEvent(input: { type: agent_created, data: { agent_id: "agent_1", name: "A", created_by: "u" } }) { id } }`,
    );
    expect(published.errors).toBeUndefined();
    const viaRest = await rest(restKey, "POST", "/api/v1/events", {
      event: "message_received",
      data: { agent_id: "agent_1", user_id: "user_1", message: "hello", conversation_id: "conv_1" },
    });
    expect(viaRest.status).toBe(202);

    // 401s with a wrong key, over REST, GraphQL and WebSocket; and the right key over WebSocket.
    const wrongKey = `sk_live_${"f".repeat(40)}`;
    secrets.push({ what: "wrong key sent by a client", value: wrongKey });
    expect((await rest(wrongKey, "GET", "/api/v1/webhooks")).status).toBe(401);
    expect((await app.gql(wrongKey, `{ viewer { id } }`)).status).toBe(401);
    const badSocket = createClient({
      url: app.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${wrongKey}` },
      lazy: false,
      retryAttempts: 0,
      onNonLazyError: () => {},
    });
    const goodSocket = createClient({
      url: app.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${account.apiKey}` },
      lazy: true,
      retryAttempts: 0,
    });
    const viewerOverWs = await new Promise<unknown>((resolve, reject) => {
      let value: unknown;
      goodSocket.subscribe({ query: `{ viewer { id } }` }, { next: (r) => void (value = r), error: reject, complete: () => resolve(value) });
    });
    expect(viewerOverWs).toEqual({ data: { viewer: { id: account.accountId } } });
    await badSocket.dispose();
    await goodSocket.dispose();

    // A throttled key (rate_limit_exceeded follows).
    const answers = await Promise.all(Array.from({ length: RATE + 10 }, () => rest(throttledKey, "GET", "/api/v1/webhooks")));
    expect(answers.some((a) => a.status === 429)).toBe(true);
    await until(
      () => app.handle.app.db.event.count({ where: { accountId: account.accountId, type: "rate_limit_exceeded" } }),
      (n) => n === 1,
    );

    // Let the deliveries settle: the echo ones succeed, the failing one gives up.
    await until(
      () => app.handle.app.db.delivery.findMany({ where: { accountId: account.accountId } }),
      (rows) => rows.length === 3 && rows.every((r) => r.status !== "pending"),
    );
    expect(echo.requests.length).toBeGreaterThanOrEqual(2);
    expect(failing.requests.length).toBeGreaterThanOrEqual(4);
  });

  it("the delivery log never holds a secret, even when the receiver echoes the request headers back", async () => {
    const [account] = await app.handle.app.db.account.findMany({ where: { name: "Secretive" } });
    const key = secrets.find((s) => s.what === "first API key")!.value;
    const log = await app.gql(
      key,
      `{ deliveries(first: 50) { edges { node { id status webhook { id } attempts { number responseStatus responseBody error } } } } }`,
    );
    expect(log.errors).toBeUndefined();
    const deliveries = log.data.deliveries.edges.map((e: { node: unknown }) => e.node) as Array<{
      webhook: { id: string };
      attempts: Array<{ responseStatus: number | null; responseBody: string | null; error: string | null }>;
    }>;
    expect(deliveries.length).toBe(3);
    const attempts = deliveries.flatMap((d) => d.attempts);
    expect(attempts.length).toBeGreaterThanOrEqual(6);
    // The echo is really there: signatures made with the secrets, not the secrets.
    const echoed = attempts.filter((a) => a.responseBody?.includes("spawn-signature"));
    expect(echoed.length).toBe(attempts.length);
    for (const attempt of attempts) {
      const body = JSON.parse(attempt.responseBody!) as Record<string, string>;
      expect(body["spawn-signature"]).toMatch(/^sha256=[0-9a-f]{64}$/);
      expect(body["webhook-signature"]).toMatch(/^v1,/);
    }
    expect(findLeaks(JSON.stringify(log), secrets)).toEqual([]);
    // Nor does what the database stores for the log.
    const stored = await app.handle.app.db.deliveryAttempt.findMany({ where: { delivery: { accountId: account!.id } } });
    expect(findLeaks(JSON.stringify(stored), secrets)).toEqual([]);
  });

  it("this app's log file holds none of the keys or secrets (and did log the session)", async () => {
    await app.stop();
    stopped = true;
    const file = path.join(TEST_LOG_DIR, `app-${process.pid}.log`);
    const text = await readFile(file, "utf8");
    // The session was logged at debug level: the file is the right one and not empty.
    for (const id of webhookIds.slice(0, 2)) expect(text).toContain(id);
    expect(text).toMatch(/"level":20/);
    expect(text).toMatch(/rate limit/i);
    expect(findLeaks(text, secrets)).toEqual([]);
  });

  it("no file in .test-logs holds a whsec_ secret or an sk_ key made here", async () => {
    const files = (await readdir(TEST_LOG_DIR)).filter((name) => !name.startsWith("."));
    expect(files.length).toBeGreaterThan(0);
    const made = secrets.filter((s) => s.value.startsWith("whsec_") || s.value.startsWith("sk_"));
    expect(made.length).toBeGreaterThanOrEqual(9);
    const leaks: string[] = [];
    for (const name of files) {
      const text = await readFile(path.join(TEST_LOG_DIR, name), "utf8").catch(() => "");
      for (const leak of findLeaks(text, made)) leaks.push(`${name}: ${leak}`);
    }
    expect(leaks).toEqual([]);
  });
});
