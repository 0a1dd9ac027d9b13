import type { Ctx } from "./context.ts";
import { closedLoop, gql, pool, type LoadResult } from "./http.ts";
import type { ReceiverStats } from "./receiver.ts";
import { createAccount, createWebhooks, eventData, PUBLISH_MUTATION, type Account, type Service } from "./service.ts";
import { nowMs, summarize } from "./stats.ts";

export interface DeliveryRun {
  account: Account;
  webhookIds: string[];
  publish: LoadResult;
  stats: ReceiverStats;
  reason: "complete" | "stalled" | "timeout";
  expected: number;
}

/** One publishEvent over GraphQL; resolves with the event id, undefined on a GraphQL error. */
export async function publishOnce(client: ReturnType<typeof pool>, account: Account, tag: string): Promise<string | undefined> {
  const result = await gql<{ publishEvent: { id: string } }>(client, account.apiKey, PUBLISH_MUTATION, {
    input: { type: "agent_created", data: eventData(tag) },
  });
  if (result.errors?.length) throw new Error(`${result.status} ${result.errors[0]!.message}`);
  return result.data?.publishEvent.id;
}

/** A short warm-up (JIT, connection pools, prepared plans) on an account of its own, not counted. */
export async function warmUp(ctx: Ctx, service: Service, events = 50): Promise<void> {
  const tag = `warm-${Math.random().toString(36).slice(2, 8)}`;
  const account = await createAccount(service, tag);
  await createWebhooks(service, account, [ctx.receiver.url(tag, 0)]);
  const client = pool(service.origin, 8);
  await closedLoop({ concurrency: 8, total: events, maxMs: 20_000, fn: () => publishOnce(client, account, tag) });
  await ctx.receiver.waitForDeliveries(tag, events, { stallMs: 5_000, maxMs: 20_000 });
  await client.close();
  await ctx.receiver.forget(tag);
}

/**
 * A fresh account with `webhooks` webhooks at the receiver under `tag`; `events` events published
 * over GraphQL by `concurrency` clients; then waits until every (webhook, event) pair arrived or
 * nothing arrived for the stall time.
 */
export async function publishAndCount(
  ctx: Ctx,
  service: Service,
  options: { tag: string; events: number; webhooks: number; mode?: "ok" | "flaky"; concurrency: number; maxPublishMs?: number; maxWaitMs?: number },
): Promise<DeliveryRun> {
  const { receiver, opts } = ctx;
  const account = await createAccount(service, options.tag);
  const webhookIds = await createWebhooks(
    service,
    account,
    Array.from({ length: options.webhooks }, (_, i) => receiver.url(options.tag, i, options.mode ?? "ok")),
  );
  const client = pool(service.origin, options.concurrency);
  ctx.log(`${options.tag}: publishing ${options.events} events to ${options.webhooks} webhooks (${options.concurrency} clients)`);
  const publish = await closedLoop({
    concurrency: options.concurrency,
    total: options.events,
    maxMs: options.maxPublishMs ?? 120_000,
    fn: () => publishOnce(client, account, options.tag),
  });
  const expected = publish.ok * options.webhooks;
  let lastLog = 0;
  const { stats, reason } = await receiver.waitForDeliveries(options.tag, expected, {
    stallMs: opts.stallSeconds * 1000,
    maxMs: options.maxWaitMs ?? 180_000,
    onProgress: (s) => {
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        ctx.log(`${options.tag}: ${s.delivered}/${expected} delivered`);
      }
    },
  });
  await client.close();
  return { account, webhookIds, publish, stats, reason, expected };
}

/** The fields every delivery scenario reports: rates, latencies, and an account of every delivery. */
export function deliveryFields(run: DeliveryRun) {
  const { publish, stats, expected } = run;
  const endedAt = stats.last_delivered_at ?? nowMs();
  const seconds = (endedAt - publish.startedAt) / 1000;
  const publishLatency = summarize(publish.latencies);
  return {
    deliveries_per_s: stats.delivered / seconds,
    p50_ms: stats.latency_p50_ms ?? null,
    p99_ms: stats.latency_p99_ms ?? null,
    latency_max_ms: stats.latency_max_ms ?? null,
    published: publish.ok,
    publish_errors: publish.errors,
    webhooks: run.webhookIds.length,
    expected,
    delivered: Math.min(stats.delivered, expected),
    missing: Math.max(0, expected - stats.delivered),
    unexpected: Math.max(0, stats.delivered - expected),
    duplicates: stats.duplicates,
    receiver_requests: stats.requests,
    publish_per_s: publish.ok / ((publish.endedAt - publish.startedAt) / 1000),
    publish_p50_ms: publishLatency.p50,
    publish_p99_ms: publishLatency.p99,
    duration_s: seconds,
    drain_s: (endedAt - publish.endedAt) / 1000,
    complete: run.reason === "complete",
    first_publish_error: publish.firstError,
  };
}
