import type { Ctx } from "../lib/context.ts";
import { pool } from "../lib/http.ts";
import { publishOnce, warmUp } from "../lib/publish.ts";
import { createAccount, createWebhooks, type BackendKind } from "../lib/service.ts";
import { nowMs } from "../lib/stats.ts";

/**
 * One event to 1,000 webhooks of one account: time from the publish request to the last receipt.
 * Repeated `--fanout-rounds` times (one event per round, each waited for); reports the median round.
 */
export async function fanout(ctx: Ctx): Promise<void> {
  const kinds: BackendKind[] = ctx.opts.noRedis ? ["embedded"] : ["embedded", "redis-postgres"];
  for (const kind of kinds) await fanoutOn(ctx, kind);
}

async function fanoutOn(ctx: Ctx, kind: BackendKind): Promise<void> {
  const { opts, receiver } = ctx;
  const scenario = kind === "embedded" ? "fanout-1000-webhooks" : `fanout-1000-webhooks-${kind}`;
  const service = await ctx.shared(kind);
  await warmUp(ctx, service, 20);
  const account = await createAccount(service, scenario);
  const created = nowMs();
  const rounds: Array<{ lastMs: number; p50: number | null; p99: number | null; delivered: number; publishMs: number }> = [];
  // The webhooks are created once; rounds are told apart by forgetting the tag between them.
  const tag = scenario;
  const ids = await createWebhooks(
    service,
    account,
    Array.from({ length: opts.fanoutWebhooks }, (_, i) => receiver.url(tag, i)),
  );
  const setupS = (nowMs() - created) / 1000;
  ctx.log(`${scenario}: ${ids.length} webhooks created in ${setupS.toFixed(1)} s`);
  const client = pool(service.origin, 2);
  let missing = 0;
  for (let round = 0; round < opts.fanoutRounds; round++) {
    await receiver.forget(tag);
    const t0 = nowMs();
    const id = await publishOnce(client, account, tag);
    const publishMs = nowMs() - t0;
    if (!id) throw new Error("publishEvent returned no id");
    const { stats } = await receiver.waitForDeliveries(tag, ids.length, { stallMs: opts.stallSeconds * 1000, maxMs: 120_000 });
    missing += Math.max(0, ids.length - stats.delivered);
    rounds.push({
      lastMs: (stats.last_delivered_at ?? nowMs()) - t0,
      p50: stats.latency_p50_ms ?? null,
      p99: stats.latency_p99_ms ?? null,
      delivered: stats.delivered,
      publishMs,
    });
  }
  await client.close();
  await receiver.forget(tag);
  const sorted = [...rounds].sort((a, b) => a.lastMs - b.lastMs);
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  ctx.emit({
    scenario,
    backend: kind,
    deliveries_per_s: median.delivered / (median.lastMs / 1000),
    p50_ms: median.p50,
    p99_ms: median.p99,
    webhooks: ids.length,
    last_receipt_ms: median.lastMs,
    last_receipt_ms_rounds: rounds.map((r) => Math.round(r.lastMs)),
    publish_ms: median.publishMs,
    delivered: median.delivered,
    missing_all_rounds: missing,
    rounds: rounds.length,
    webhook_setup_s: setupS,
  });
}
