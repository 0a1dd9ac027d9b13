import { afterAll, beforeAll, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.ts";
import { createBackend, describeEachMode, type Backend } from "../helpers/backends.ts";
import { startReceiver, type Receiver } from "../helpers/receiver.ts";
import { until } from "../helpers/verify.ts";

const EVENTS = 100;
const TIMEOUT_MS = 1_000;
const ANSWER_MS = 600;

describeEachMode("many deliveries to one receiver at once", (mode) => {
  let backend: Backend;
  let app: TestApp;
  let receiver: Receiver;

  beforeAll(async () => {
    backend = await createBackend(mode);
    // WORKER_CONCURRENCY and WEBHOOK_MAX_IN_FLIGHT keep their defaults (500, 100): as many
    // attempts in flight as events here.
    app = await startTestApp(backend, { WEBHOOK_TIMEOUT: `${TIMEOUT_MS}ms`, API_RATE_LIMIT: "10000/s" });
    receiver = await startReceiver(async (_req, _n, res) => {
      await new Promise((resolve) => setTimeout(resolve, ANSWER_MS));
      res.writeHead(200).end("ok");
    });
  });
  afterAll(async () => {
    await app?.stop();
    await receiver?.close();
    await backend?.dispose();
  });

  it(`a receiver that answers every request in ${ANSWER_MS} ms (timeout ${TIMEOUT_MS} ms) gets each event once, every first attempt succeeds`, async () => {
    const { apiKey } = await app.createAccount();
    const created = await app.gql(
      apiKey,
      `mutation ($url: String!) { createWebhook(input: { url: $url, events: [user_logged_in] }) { webhook { id } } }`,
      { url: receiver.url },
    );
    expect(created.errors).toBeUndefined();
    const published = await Promise.all(
      Array.from({ length: EVENTS }, (_, i) =>
        app.gql(apiKey, `mutation ($user: String!) { publishEvent(input: { type: user_logged_in, data: { user_id: $user } }) { id } }`, {
          user: `user_${i}`,
        }),
      ),
    );
    for (const result of published) expect(result.errors).toBeUndefined();

    type Row = { attemptCount: number; status: string; attempts: Array<{ number: number; error: string | null; durationMs: number }> };
    let rows: Row[] = [];
    await until(
      async () => {
        const result = await app.gql(
          apiKey,
          `{ deliveries(first: 100) { edges { node { status attemptCount attempts { number error durationMs } } } } }`,
        );
        expect(result.errors).toBeUndefined();
        rows = result.data.deliveries.edges.map((e: { node: Row }) => e.node);
        return rows.length === EVENTS && rows.every((d) => d.status !== "pending");
      },
      { timeoutMs: 20_000, what: "every delivery to finish", describe: () => rows.filter((d) => d.status === "pending").length },
    );

    const failedAttempts = rows.flatMap((d) => d.attempts.filter((a) => a.error !== null));
    expect({
      failedAttempts: failedAttempts.length,
      examples: failedAttempts.slice(0, 3),
      requests: receiver.requests.length,
    }).toEqual({ failedAttempts: 0, examples: [], requests: EVENTS });
    expect(rows.every((d) => d.status === "succeeded" && d.attemptCount === 1)).toBe(true);
  });
});
