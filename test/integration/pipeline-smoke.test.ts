import { afterAll, beforeAll, expect, it } from "vitest";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { startReceiver, type Receiver } from "../helpers/receiver.ts";

describeEachMode("pipeline smoke", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let receiver: Receiver;
  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend);
    receiver = await startReceiver();
  });
  afterAll(async () => {
    await app?.stop();
    await receiver?.close();
    await backend?.dispose();
  });

  it("delivers a published event", async () => {
    const { apiKey } = await app.createAccount();
    const created = await app.gql(apiKey, `mutation ($url: String!) { createWebhook(input: {url: $url, events: [agent_created]}) { webhook { id } secret } }`, { url: receiver.url });
    expect(created.errors).toBeUndefined();
    const published = await app.gql(apiKey, `mutation { publishEvent(input: {type: agent_created, data: {agent_id: "a1", name: "n", created_by: "u"}}) { id type timestamp data } }`);
    expect(published.errors).toBeUndefined();
    const [request] = await receiver.waitFor(1);
    expect(request!.body).toBe(JSON.stringify({ event: "agent_created", timestamp: published.data.publishEvent.timestamp, data: published.data.publishEvent.data }));
    expect(request!.headers["webhook-id"]).toBe(published.data.publishEvent.id);
    let log: any;
    for (let i = 0; i < 50; i++) {
      log = await app.gql(apiKey, `{ deliveries { edges { node { id status attemptCount attempts { number responseStatus succeeded } event { id } webhook { id } } } } }`);
      if (log.data?.deliveries.edges[0]?.node.status === "succeeded") break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(log.errors).toBeUndefined();
    expect(log.data.deliveries.edges[0].node).toMatchObject({ status: "succeeded", attemptCount: 1, attempts: [{ number: 1, responseStatus: 200, succeeded: true }] });
  });
});
