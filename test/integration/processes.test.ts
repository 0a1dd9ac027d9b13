import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createBackend, unavailable, type Backend } from "../helpers/backends.ts";
import { startReceiver, type Receiver } from "../helpers/receiver.ts";
import { gqlAt, newAdminKey, spawnService, type ServiceProcess } from "../helpers/spawn.ts";
import { connectSubscriptions, untilLive, type SubscriptionClient } from "../helpers/subscriptions.ts";
import { until, verifyBoth, waitForRequests } from "../helpers/verify.ts";

/** Several processes share state only through PostgreSQL and Redis: without both there is nothing to test. */
function whyNot(): string | undefined {
  const postgres = unavailable("postgres");
  if (postgres) return postgres;
  const { redis } = inject("services");
  return redis.available ? undefined : `Redis unavailable: ${redis.reason}`;
}

const reason = whyNot();
const suite = reason ? describe.skip : describe;

suite(`two API processes and a worker process on one PostgreSQL and one Redis${reason ? ` (skipped: ${reason})` : ""}`, () => {
  let backend: Backend;
  let receiver: Receiver;
  let api1: ServiceProcess;
  let api2: ServiceProcess;
  let worker: ServiceProcess;
  let subscriber: SubscriptionClient | undefined;
  const adminKey = newAdminKey();
  const processes: ServiceProcess[] = [];

  beforeAll(async () => {
    backend = await createBackend("postgres");
    receiver = await startReceiver();
    // Started together, as a deployment would: they race to apply the migrations.
    const started = await Promise.allSettled(
      (["api", "api", "worker"] as const).map((role) => spawnService({ role, backend, adminKey })),
    );
    for (const result of started) if (result.status === "fulfilled") processes.push(result.value);
    const failure = started.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failure) throw failure.reason;
    [api1, api2, worker] = processes as [ServiceProcess, ServiceProcess, ServiceProcess];
  });
  afterAll(async () => {
    await subscriber?.dispose();
    await Promise.all(processes.map((p) => p.dispose()));
    await receiver?.close();
    await backend?.dispose();
  });

  it("every role answers /healthz; the worker serves no GraphQL", async () => {
    for (const process of [api1, api2, worker]) {
      const health = await fetch(`${process.baseUrl}/healthz`);
      expect(health.status).toBe(200);
      const ready = await fetch(`${process.baseUrl}/readyz`);
      expect(ready.status).toBe(200);
    }
    const graphql = await fetch(worker.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${adminKey}` },
      body: JSON.stringify({ query: "{ __typename }" }),
    });
    expect(graphql.status).toBe(404);
  });

  it("an event published through API 2 reaches a subscriber of API 1, and the worker process delivers it", async () => {
    const account = await gqlAt(api1.url, adminKey, `mutation { createAccount(name: "Processes") { account { id } apiKey } }`);
    expect(account.errors).toBeUndefined();
    const apiKey = account.data.createAccount.apiKey as string;
    const created = await gqlAt(
      api2.url,
      apiKey,
      `mutation ($url: String!) { createWebhook(input: { url: $url, events: [agent_created] }) { webhook { id } secret } }`,
      { url: receiver.url },
    );
    expect(created.errors).toBeUndefined();
    const secret = created.data.createWebhook.secret as string;

    const publish = async (name: string) => {
      const result = await gqlAt(
        api2.url,
        apiKey,
        `mutation ($name: String!) { publishEvent(input: { type: agent_created, data: { agent_id: "a1", name: $name, created_by: "u1" } }) { id timestamp } }`,
        { name },
      );
      expect(result.errors).toBeUndefined();
      return result.data.publishEvent as { id: string; timestamp: number };
    };

    subscriber = connectSubscriptions(api1.wsUrl, apiKey);
    const events = subscriber.subscribe<{ id: string; type: string; data: { name: string } }>(
      `subscription { events { id type data } }`,
    );
    // Delivery updates come from the worker process, through Redis, to API 1's subscriber.
    const updates = subscriber.subscribe<{ status: string; attemptCount: number; event: { id: string } }>(
      `subscription { deliveryUpdated { status attemptCount event { id } } }`,
    );
    await untilLive(events, async () => {
      const probe = await publish("probe");
      return (item) => item.id === probe.id;
    });
    await untilLive(updates, async () => {
      const probe = await publish("probe");
      return (item) => item.event.id === probe.id;
    });

    const event = await publish("across processes");
    const streamed = await events.waitFor((e) => e.id === event.id);
    expect(streamed).toMatchObject({ type: "agent_created", data: { name: "across processes" } });

    // Only the worker process sends (ROLE=api never delivers); the receiver can verify it.
    const [request] = await waitForRequests(receiver.requests, event.id, 1);
    expect(verifyBoth(request!, secret)).toEqual({ docs: true, standard: true });
    expect(JSON.parse(request!.body)).toEqual({
      event: "agent_created",
      timestamp: event.timestamp,
      data: { agent_id: "a1", name: "across processes", created_by: "u1" },
    });
    const log = await until(async () => {
      const result = await gqlAt(
        api1.url,
        apiKey,
        `query ($id: ID!) { deliveries(eventId: $id) { edges { node { status attemptCount } } } }`,
        { id: event.id },
      );
      const node = result.data?.deliveries.edges[0]?.node;
      return node?.status === "succeeded" ? node : undefined;
    });
    expect(log).toEqual({ status: "succeeded", attemptCount: 1 });
    const update = await updates.waitFor((u) => u.event.id === event.id);
    expect(update).toEqual({ status: "succeeded", attemptCount: 1, event: { id: event.id } });
    expect(receiver.requests.filter((r) => r.headers["webhook-id"] === event.id)).toHaveLength(1);
  });

  it("revoking a key through API 2 closes its WebSocket on API 1 at once and refuses it there", async () => {
    const account = await gqlAt(api1.url, adminKey, `mutation { createAccount(name: "Revocation") { account { id } apiKey } }`);
    expect(account.errors).toBeUndefined();
    const apiKey = account.data.createAccount.apiKey as string;
    const created = await gqlAt(api1.url, apiKey, `mutation { createApiKey(name: "to revoke") { apiKey key { id } } }`);
    expect(created.errors).toBeUndefined();
    const doomedKey = created.data.createApiKey.apiKey as string;
    // API 1 has looked the key up (and caches the lookup) before the revocation
    expect((await gqlAt(api1.url, doomedKey, `{ viewer { id } }`)).errors).toBeUndefined();

    const client = connectSubscriptions(api1.wsUrl, doomedKey);
    try {
      const events = client.subscribe<{ id: string }>(`subscription { events { id } }`);
      await untilLive(events, async () => {
        const probe = await gqlAt(
          api1.url,
          apiKey,
          `mutation { publishEvent(input: { type: agent_created, data: { agent_id: "a1", name: "probe", created_by: "u1" } }) { id } }`,
        );
        return (item) => item.id === probe.data.publishEvent.id;
      });
      let closed: { code: number; reason: string } | undefined;
      client.client.on("closed", (event) => void (closed = event as { code: number; reason: string }));

      const revoked = await gqlAt(api2.url, apiKey, `mutation ($id: ID!) { revokeApiKey(id: $id) { id } }`, {
        id: created.data.createApiKey.key.id,
      });
      expect(revoked.errors).toBeUndefined();
      const close = await until(() => closed, { timeoutMs: 5_000, what: "API 1 to close the revoked key's connection" });
      expect(close).toMatchObject({ code: 4403, reason: "Forbidden: API key revoked" });
      // and API 1 no longer answers the key from its cache
      const refused = await gqlAt(api1.url, doomedKey, `{ viewer { id } }`);
      expect(refused.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
    } finally {
      await client.dispose();
    }
  });

  it("SIGTERM stops each process with exit code 0 within a few seconds", async () => {
    // api1 still has a WebSocket subscriber connected.
    for (const process of [api1, api2, worker]) {
      const started = Date.now();
      const exit = await process.signal("SIGTERM", 8_000);
      const took = Date.now() - started;
      expect({ role: process.role, ...exit }, process.output().stderr).toEqual({ role: process.role, code: 0, signal: null });
      expect(took).toBeLessThan(5_000);
    }
  });
});
