import { afterAll, beforeAll, expect, it } from "vitest";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { startTestApp, type TestApp } from "../helpers/app.ts";

describeEachMode("smoke", (mode) => {
  let backend: Backend;
  let app: TestApp;
  beforeAll(async () => {
    backend = await createBackend(mode);
    app = await startTestApp(backend);
  });
  afterAll(async () => {
    await app?.stop();
    await backend?.dispose();
  });

  it("creates an account and a webhook", async () => {
    const { apiKey } = await app.createAccount();
    const created = await app.gql(apiKey, `mutation { createWebhook(input: {url: "https://example.com/h", events: [agent_created]}) { webhook { id } secret } }`);
    expect(created.data.createWebhook.webhook.id).toMatch(/^wh_/);
    const list = await app.gql(apiKey, `{ webhooks { edges { node { id } } } }`);
    expect(list.data.webhooks.edges).toHaveLength(1);
  });
});
