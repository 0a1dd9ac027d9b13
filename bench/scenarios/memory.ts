import type { Ctx } from "../lib/context.ts";
import { pacedLoop, pool } from "../lib/http.ts";
import { deliveryFields, publishOnce, warmUp } from "../lib/publish.ts";
import { summarizeProfiles } from "../lib/profile.ts";
import { createAccount, createWebhooks, startService, startSplitServices, type BackendKind, type Service } from "../lib/service.ts";
import { nowMs } from "../lib/stats.ts";

const MB = 1024 * 1024;

/**
 * Service RSS and publish -> receipt latency over a sustained run: `--memory-rate` events/s
 * (default 1,000) to an account with one webhook for `--memory-minutes` (default 0.5 when the
 * scenario is named), on a fresh service of each `--memory-backends` (`redis-postgres-split`: one
 * api and one worker process; RSS is then their sum); RSS sampled every second, then the backlog is
 * given time to drain.
 */
export async function memory(ctx: Ctx): Promise<void> {
  if (ctx.opts.noRedis) return sustained(ctx, "embedded", false);
  for (const name of ctx.opts.memoryBackends) {
    // splitting needs a shared queue: only Redis + PostgreSQL can
    if (name === "redis-postgres-split") await sustained(ctx, "redis-postgres", true);
    else if (name === "embedded" || name === "redis-postgres") await sustained(ctx, name, false);
    else throw new Error(`--memory-backends: unknown backend "${name}" (embedded, redis-postgres, redis-postgres-split)`);
  }
}

async function sustained(ctx: Ctx, kind: BackendKind, split: boolean): Promise<void> {
  const { opts, receiver } = ctx;
  const scenario = kind === "embedded" ? "memory" : `memory-${kind}${split ? "-split" : ""}`;
  const minutes = opts.memoryMinutes > 0 ? opts.memoryMinutes : 0.5;
  const backend = await ctx.freshBackend(kind);
  const extras = ctx.serviceExtras(scenario);
  const services: Service[] = split
    ? await startSplitServices({ name: scenario, backend, ...extras })
    : [await startService({ name: scenario, backend, ...extras })];
  const service = services[0]!;
  const rss = () => services.reduce((sum, s) => sum + (s.child.rss() ?? 0), 0);
  try {
    await warmUp(ctx, service);
    const tag = scenario;
    const account = await createAccount(service, tag);
    const webhookIds = await createWebhooks(service, account, [receiver.url(tag, 0)]);
    const client = pool(service.origin, 64);
    const samples: Array<{ t: number; rss: number }> = [];
    const sample = () => samples.push({ t: nowMs(), rss: rss() });
    sample();
    const timer = setInterval(sample, 1000);
    const rssStart = samples[0]!.rss;
    ctx.log(`${scenario}: ${opts.memoryRate} events/s for ${minutes} min (RSS ${Math.round(rssStart / MB)} MB)`);
    const publish = await pacedLoop({
      ratePerS: opts.memoryRate,
      total: Math.round(opts.memoryRate * minutes * 60),
      maxMs: minutes * 60_000 + 1_000,
      maxInFlight: 128,
      fn: () => publishOnce(client, account, tag),
    });
    sample();
    const rssEnd = samples[samples.length - 1]!.rss;
    const { stats, reason } = await receiver.waitForDeliveries(tag, publish.ok, {
      stallMs: opts.stallSeconds * 1000,
      maxMs: Math.max(60_000, minutes * 60_000),
    });
    sample();
    clearInterval(timer);
    const fields = deliveryFields({ account, webhookIds, publish, stats, reason, expected: publish.ok });
    ctx.emit({
      scenario,
      backend: kind,
      processes: services.length,
      ...fields,
      target_events_per_s: opts.memoryRate,
      minutes,
      rss_start_mb: Math.round(rssStart / MB),
      rss_end_mb: Math.round(rssEnd / MB),
      rss_after_drain_mb: Math.round(samples[samples.length - 1]!.rss / MB),
      rss_max_mb: Math.round(Math.max(...samples.map((s) => s.rss)) / MB),
      rss_samples_mb: samples.filter((_, i) => i % Math.max(1, Math.floor(samples.length / 20)) === 0).map((s) => Math.round(s.rss / MB)),
      max_publish_late_ms: publish.maxLateMs,
    });
    await client.close();
    await receiver.forget(tag);
  } finally {
    for (const s of services.reverse()) await s.stop();
    if (extras.nodeFlags) await summarizeProfiles(ctx, scenario);
  }
}
