import type { Ctx } from "../lib/context.ts";
import { closedLoop, pool } from "../lib/http.ts";
import { publishOnce, warmUp } from "../lib/publish.ts";
import { createAccount, createWebhooks, eventData, setWebhookStatus, type BackendKind, type Service } from "../lib/service.ts";
import { nowMs, sleep, summarize } from "../lib/stats.ts";

interface Variant {
  scenario: string;
  api: "graphql" | "rest";
  backend: BackendKind;
  webhooks: number;
}

/**
 * publishEvent requests/s with concurrent clients, over GraphQL and REST, against the shared
 * service of each backend: with N webhooks per account (so deliveries run at the same time) and
 * with none (pure ingest).
 */
export async function ingest(ctx: Ctx): Promise<void> {
  const { opts } = ctx;
  // Pure ingest first (a clean service), then with webhooks, so deliveries run at the same time.
  const variants: Variant[] = [
    { scenario: "ingest-graphql-0-webhooks", api: "graphql", backend: "embedded", webhooks: 0 },
    { scenario: "ingest-rest-0-webhooks", api: "rest", backend: "embedded", webhooks: 0 },
    { scenario: "ingest-graphql", api: "graphql", backend: "embedded", webhooks: opts.webhooks },
    { scenario: "ingest-rest", api: "rest", backend: "embedded", webhooks: opts.webhooks },
    ...(opts.noRedis
      ? []
      : [{ scenario: "ingest-graphql-redis-postgres", api: "graphql" as const, backend: "redis-postgres" as const, webhooks: opts.webhooks }]),
  ];
  const warmed = new Set<BackendKind>();
  for (const variant of variants) {
    const service = await ctx.shared(variant.backend);
    if (!warmed.has(variant.backend)) {
      await warmUp(ctx, service);
      warmed.add(variant.backend);
    }
    await runVariant(ctx, service, variant);
  }
}

async function runVariant(ctx: Ctx, service: Service, variant: Variant): Promise<void> {
  const { opts, receiver } = ctx;
  const tag = variant.scenario;
  const account = await createAccount(service, tag);
  const webhookIds = await createWebhooks(
    service,
    account,
    Array.from({ length: variant.webhooks }, (_, i) => receiver.url(tag, i)),
  );
  const client = pool(service.origin, opts.concurrency);
  const restBody = () =>
    JSON.stringify({ event: "agent_created", data: eventData(tag) });
  const fn =
    variant.api === "graphql"
      ? () => publishOnce(client, account, tag)
      : async () => {
          const res = await client.request({
            path: "/api/v1/events",
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${account.apiKey}` },
            body: restBody(),
          });
          const body = (await res.body.json()) as { id?: string; error?: string };
          if (res.statusCode !== 202) throw new Error(`${res.statusCode} ${body.error ?? ""}`);
          return body.id;
        };
  ctx.log(`${tag}: ${opts.ingestSeconds} s of publishEvent over ${variant.api} (${opts.concurrency} clients, ${variant.webhooks} webhooks)`);
  const result = await closedLoop({
    concurrency: opts.concurrency,
    total: opts.ingestRequests,
    maxMs: opts.ingestSeconds * 1000,
    fn,
  });
  const seconds = (result.endedAt - result.startedAt) / 1000;
  const during = await receiver.stats(tag);
  // Stop the backlog (deliveries of disabled webhooks wait; they are not what this measures) and let
  // the queued jobs run out, so the next variant starts on an idle service.
  let settleMs = 0;
  if (webhookIds.length > 0) {
    await setWebhookStatus(service, account, webhookIds, "disabled");
    settleMs = await waitIdle(service);
  }
  const latency = summarize(result.latencies);
  const rps = result.ok / seconds;
  const inWindow =
    during.first_delivered_at !== null && during.last_delivered_at !== null ? during.delivered : 0;
  ctx.emit({
    scenario: tag,
    // Deliveries that reached the receiver while the publishers ran, per second of the run.
    deliveries_per_s: variant.webhooks > 0 ? inWindow / seconds : null,
    p50_ms: latency.p50,
    p99_ms: latency.p99,
    api: variant.api,
    backend: variant.backend,
    webhooks: variant.webhooks,
    requests_per_s: rps,
    requests: result.attempted,
    ok: result.ok,
    errors: result.errors,
    ratio_to_api_ceiling: ctx.apiCeilingRps ? rps / ctx.apiCeilingRps : null,
    api_ceiling_requests_per_s: ctx.apiCeilingRps,
    clients: opts.concurrency,
    deliveries_created: result.ok * variant.webhooks,
    deliveries_during_run: inWindow,
    settle_ms: settleMs,
    first_error: result.firstError,
  });
  await client.close();
  await receiver.forget(tag);
}

/**
 * Waits until the service is idle: /readyz (a `SELECT 1` through the same database pool the
 * worker uses) answers within 25 ms three times in a row. At most 30 s; returns the time waited.
 */
export async function waitIdle(service: Service): Promise<number> {
  const t0 = nowMs();
  let fast = 0;
  while (fast < 3 && nowMs() - t0 < 30_000) {
    const t = nowMs();
    const res = await service.setup.request({ path: "/readyz", method: "GET" });
    await res.body.dump();
    fast = nowMs() - t < 25 ? fast + 1 : 0;
    await sleep(100);
  }
  return nowMs() - t0;
}
