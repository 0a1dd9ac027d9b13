import { createHmac } from "node:crypto";
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { startReceiver, type ReceivedRequest, type Receiver } from "../helpers/receiver.ts";
import { untilValue as until } from "../helpers/verify.ts";

/**
 * API_RATE_LIMIT (CONTRACT §1, §4, §5): per API key, GraphQL and REST together. Past the limit,
 * REST answers 429 with Retry-After and GraphQL RATE_LIMITED (HTTP 429); the account gets a
 * `rate_limit_exceeded` event, at most once a minute per key, on subscriptions and webhooks.
 */

const LIMIT = 5;
const BURST = 8;

interface StreamedEvent {
  id: string;
  type: string;
  data: { limit?: unknown; window?: unknown; api_key_id?: string; probe?: string; [key: string]: unknown };
}

interface Sent {
  status: number;
  headers: Headers;
  json: any;
}

/** Resolves once `items` holds something matching, polling; rejects after `timeoutMs`. */
function waitForItem<T>(items: T[], match: (item: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
  return until(
    async () => items.find(match),
    (found) => found !== undefined,
    timeoutMs,
  ).then(
    (found) => found!,
    () => {
      throw new Error(`no ${what} within ${timeoutMs}ms; got ${JSON.stringify(items).slice(0, 1500)}`);
    },
  );
}

function bodyOf(request: ReceivedRequest): { event: string; timestamp: number; data: StreamedEvent["data"] } {
  return JSON.parse(request.body);
}

describeEachMode("rate limit", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let receiver: Receiver;
  let ws: Client;
  let accountId: string;
  /** Flooded over REST. */
  let restKey: { key: string; id: string };
  /** Flooded over GraphQL. */
  let graphqlKey: { key: string; id: string };
  /** Only subscribes. */
  let subscriberKey: { key: string; id: string };
  /** Publishes probes and checks that other keys are unaffected. */
  let otherKey: { key: string; id: string };
  let webhookSecret: string;
  const streamed: StreamedEvent[] = [];
  const streamErrors: unknown[] = [];
  let probes = 0;

  async function rest(key: string, method = "GET", path = "/api/v1/webhooks", body?: unknown): Promise<Sent> {
    const response = await fetch(`${app.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: response.status, headers: response.headers, json: await response.json() };
  }

  async function graphql(key: string, query = "{ viewer { id } }"): Promise<Sent> {
    const response = await fetch(app.url, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ query }),
    });
    return { status: response.status, headers: response.headers, json: await response.json() };
  }

  /**
   * Sends BURST requests at once with a key that has not been used within the last window, so
   * the window starts with this burst. If the machine was too slow for the burst to fit in one
   * second, waits for a new window (one request that passes) and tries again; `budget` is how
   * many of the burst's requests the window still had room for.
   */
  async function burst(send: () => Promise<Sent>): Promise<{ answers: Sent[]; budget: number }> {
    let budget = LIMIT;
    for (let tries = 0; ; tries++) {
      const started = Date.now();
      const answers = await Promise.all(Array.from({ length: BURST }, send));
      if (Date.now() - started < 900 || tries >= 3) return { answers, budget };
      await until(send, (answer) => answer.status !== 429, 5_000, 100);
      budget = LIMIT - 1;
    }
  }

  /** A rate_limit_exceeded event published by hand (the contract lets any account publish any type). */
  async function probe(): Promise<string> {
    probes += 1;
    const marker = `probe-${probes}`;
    const answer = await until(
      () => rest(otherKey.key, "POST", "/api/v1/events", { event: "rate_limit_exceeded", data: { limit: 0, window: "probe", probe: marker } }),
      (sent) => sent.status !== 429,
      5_000,
      200,
    );
    expect(answer.status, JSON.stringify(answer.json)).toBe(202);
    return marker;
  }

  const fromKey = (keyId: string) => (event: StreamedEvent) => event.data.api_key_id === keyId;
  const requestsFromKey = (keyId: string) => receiver.requests.filter((r) => bodyOf(r).data.api_key_id === keyId);

  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend, { API_RATE_LIMIT: `${LIMIT}/s` });
    receiver = await startReceiver();

    // The admin key is rate limited too: one account and three more keys are four requests.
    const account = await app.createAccount("Throttled");
    accountId = account.accountId;
    const newKey = async (name: string) => {
      const created = await app.gql(
        app.adminKey,
        `mutation ($accountId: ID!, $name: String!) { createApiKey(accountId: $accountId, name: $name) { apiKey key { id } } }`,
        { accountId, name },
      );
      if (!created.data) throw new Error(JSON.stringify(created.errors));
      return { key: created.data.createApiKey.apiKey as string, id: created.data.createApiKey.key.id as string };
    };
    const firstKeyRow = await app.handle.app.db.apiKey.findFirstOrThrow({ where: { accountId } });
    restKey = { key: account.apiKey, id: firstKeyRow.id };
    graphqlKey = await newKey("graphql");
    subscriberKey = await newKey("subscriber");
    otherKey = await newKey("other");

    const created = await rest(otherKey.key, "POST", "/api/v1/webhooks", { url: receiver.url, events: ["rate_limit_exceeded"] });
    expect(created.status, JSON.stringify(created.json)).toBe(201);
    webhookSecret = created.json.secret;

    // The subscriber subscribes with a key of its own, before any flooding.
    ws = createClient({
      url: app.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${subscriberKey.key}` },
      lazy: true,
      retryAttempts: 0,
    });
    ws.subscribe<{ events: StreamedEvent }>(
      { query: `subscription { events(types: [rate_limit_exceeded]) { id type data } }` },
      {
        next: (result) => {
          if (result.errors) streamErrors.push(...result.errors);
          if (result.data?.events) streamed.push(result.data.events);
        },
        error: (error) => void streamErrors.push(error),
        complete: () => {},
      },
    );
    // Live once a probe published after subscribing comes through.
    const deadline = Date.now() + 15_000;
    const markers: string[] = [];
    for (;;) {
      markers.push(await probe());
      try {
        await waitForItem(streamed, (e) => markers.includes(String(e.data.probe)), "probe", 400);
        break;
      } catch (error) {
        if (Date.now() > deadline || streamErrors.length > 0) {
          throw new Error(`subscription not live: ${(error as Error).message}; errors ${JSON.stringify(streamErrors)}`);
        }
      }
    }
  });
  afterAll(async () => {
    await ws?.dispose();
    await receiver?.close();
    await app?.stop();
    await backend?.dispose();
  });

  it("REST: past 5 requests in a second → 429 with Retry-After and {error}; another key of the account still works", async () => {
    const { answers, budget } = await burst(() => rest(restKey.key));
    const otherWhileThrottled = await rest(otherKey.key);
    const sameWhileThrottled = await rest(restKey.key);

    const ok = answers.filter((a) => a.status === 200);
    const limited = answers.filter((a) => a.status === 429);
    expect(ok.length + limited.length).toBe(BURST);
    expect(ok).toHaveLength(budget);
    expect(limited).toHaveLength(BURST - budget);
    for (const answer of limited) {
      const retryAfter = answer.headers.get("retry-after");
      expect(retryAfter).toMatch(/^\d+$/);
      expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(retryAfter)).toBeLessThanOrEqual(1);
      expect(Object.keys(answer.json)).toEqual(["error"]);
      expect(answer.json.error).toMatch(/rate limit/i);
    }
    // Keys are limited separately.
    expect(otherWhileThrottled.status).toBe(200);
    expect(sameWhileThrottled.status === 429 || sameWhileThrottled.status === 200).toBe(true);
  });

  it("GraphQL: past the limit → RATE_LIMITED with HTTP 429 and Retry-After", async () => {
    const { answers, budget } = await burst(() => graphql(graphqlKey.key));
    const ok = answers.filter((a) => a.status === 200);
    const limited = answers.filter((a) => a.status === 429);
    expect(ok).toHaveLength(budget);
    for (const answer of ok) expect(answer.json.data.viewer.id).toBe(accountId);
    expect(limited).toHaveLength(BURST - budget);
    for (const answer of limited) {
      expect(answer.json.errors?.[0]?.extensions?.code).toBe("RATE_LIMITED");
      expect(answer.json.data ?? null).toBeNull();
      expect(Number(answer.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    }
    // REST and GraphQL share the key's budget: REST is throttled right after GraphQL's flood.
    const restNow = await rest(graphqlKey.key);
    expect(restNow.status === 429 || restNow.status === 200).toBe(true);
  });

  it("the account gets rate_limit_exceeded (limit, window) on its subscription and as a signed webhook", async () => {
    const event = await waitForItem(streamed, fromKey(restKey.id), "rate_limit_exceeded of the REST key");
    expect(event.type).toBe("rate_limit_exceeded");
    expect(event.data.limit).toBe(LIMIT);
    expect(event.data.window).toBe("1s");
    expect(event.id).toMatch(/^evt_/);
    expect(streamErrors).toEqual([]);
    // The GraphQL key's throttling is reported for that key.
    const forGraphqlKey = await waitForItem(streamed, fromKey(graphqlKey.id), "rate_limit_exceeded of the GraphQL key");
    expect(forGraphqlKey.data).toMatchObject({ limit: LIMIT, window: "1s" });

    const request = await until(
      async () => requestsFromKey(restKey.id)[0],
      (found) => found !== undefined,
    );
    const body = bodyOf(request!);
    expect(body.event).toBe("rate_limit_exceeded");
    expect(body.data).toMatchObject({ limit: LIMIT, window: "1s" });
    expect(request!.headers["webhook-id"]).toBe(event.id);
    const expected = createHmac("sha256", webhookSecret).update(request!.body).digest("hex");
    expect(request!.headers["spawn-signature"]).toBe(`sha256=${expected}`);
  });

  it("is emitted at most once a minute per key: a second flood in a new window raises nothing new", async () => {
    await waitForItem(streamed, fromKey(restKey.id), "first rate_limit_exceeded");
    // Wait for a new window (the key answers again), then flood again.
    await until(() => rest(restKey.key), (answer) => answer.status === 200, 5_000, 200);
    const { answers: again } = await burst(() => rest(restKey.key));
    expect(again.some((a) => a.status === 429)).toBe(true);

    // A marker published after the second flood: once it has arrived everywhere, anything the
    // second flood raised would have too.
    const marker = await probe();
    await waitForItem(streamed, (e) => e.data.probe === marker, "marker on the subscription");
    await until(
      async () => receiver.requests.some((r) => bodyOf(r).data.probe === marker),
      (seen) => seen,
    );

    expect(streamed.filter(fromKey(restKey.id))).toHaveLength(1);
    expect(requestsFromKey(restKey.id)).toHaveLength(1);
    const stored = await app.handle.app.db.event.findMany({ where: { accountId, type: "rate_limit_exceeded" } });
    expect(stored.filter((e) => (e.data as StreamedEvent["data"]).api_key_id === restKey.id)).toHaveLength(1);
    expect(stored.filter((e) => (e.data as StreamedEvent["data"]).api_key_id === graphqlKey.id)).toHaveLength(1);
    // The subscriber's key was never throttled.
    expect(stored.filter((e) => (e.data as StreamedEvent["data"]).api_key_id === subscriberKey.id)).toHaveLength(0);
  });
});
