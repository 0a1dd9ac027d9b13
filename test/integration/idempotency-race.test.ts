import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";

const PUBLISH = `mutation ($key: String) {
  publishEvent(input: {type: user_logged_in, data: {user_id: "u1"}, idempotencyKey: $key}) { id }
}`;

describeEachMode("concurrent publishes with one idempotency key", (mode) => {
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

  it("all get the first event, one is stored, and the service keeps answering", async () => {
    const { apiKey, accountId } = await app.createAccount();
    const results = await Promise.all(Array.from({ length: 8 }, () => app.gql(apiKey, PUBLISH, { key: "same-key" })));
    for (const result of results) expect(result.errors).toBeUndefined();
    const ids = new Set(results.map((r) => r.data.publishEvent.id));
    expect(ids.size).toBe(1);
    expect(await app.handle.app.db.event.count({ where: { accountId } })).toBe(1);
    // a statement that failed on the unique key must not break the next requests
    const after = await Promise.all([
      app.gql(apiKey, PUBLISH, { key: "other-key" }),
      app.gql(apiKey, `{ viewer { id } }`),
    ]);
    expect(after[0].errors).toBeUndefined();
    expect(after[1].data.viewer.id).toBe(accountId);
  });
});
