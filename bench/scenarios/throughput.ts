import type { Ctx } from "../lib/context.ts";
import { deliveryFields, publishAndCount, warmUp } from "../lib/publish.ts";
import { monotonicUs, summarizeProfiles, type ProfileWindow } from "../lib/profile.ts";
import { startService, startSplitServices, type BackendKind, type Service } from "../lib/service.ts";

/**
 * A fresh service (embedded: new PGlite dir; redis-postgres: new schema and Redis prefix, ROLE=all,
 * or `split`: one api and one worker process), an account with N webhooks at the receiver, events
 * published over GraphQL, every delivery counted at the receiver.
 */
export async function throughput(ctx: Ctx, scenario: string, kind: BackendKind, split = false): Promise<void> {
  const { opts } = ctx;
  const extras = ctx.serviceExtras(scenario);
  const env: Record<string, string> = opts.workerConcurrency ? { WORKER_CONCURRENCY: String(opts.workerConcurrency) } : {};
  const services: Service[] = [];
  let owned = true;
  let window: ProfileWindow | undefined;
  try {
    if (split) {
      services.push(...(await startSplitServices({ name: scenario, backend: await ctx.freshBackend(kind), env, ...extras })));
    } else {
      // Unless profiled, the fresh service is the shared one of this backend (handed on to later scenarios).
      const shared = extras.nodeFlags ? undefined : await ctx.sharedIfFresh(kind);
      if (shared) owned = false;
      services.push(shared ?? (await startService({ name: scenario, backend: await ctx.freshBackend(kind), role: "all", env, ...extras })));
    }
    const api = services[0]!;
    ctx.log(`${scenario}: service(s) up in ${services.map((s) => Math.round(s.startupMs)).join(" + ")} ms`);
    await warmUp(ctx, api);
    const events = opts.events;
    const startUs = monotonicUs();
    const run = await publishAndCount(ctx, api, {
      tag: scenario,
      events,
      webhooks: opts.webhooks,
      concurrency: opts.concurrency,
    });
    window = { startUs, endUs: monotonicUs() };
    const rss = services.map((s) => s.child.rss() ?? 0);
    ctx.emit({
      scenario,
      backend: kind,
      processes: services.length,
      ...deliveryFields(run),
      publish_clients: opts.concurrency,
      service_rss_mb: Math.round(rss.reduce((a, b) => a + b, 0) / 1048576),
      startup_ms: Math.round(services[0]!.startupMs),
    });
    await ctx.receiver.forget(scenario);
  } finally {
    if (owned) for (const s of services.reverse()) await s.stop();
    if (extras.nodeFlags) await summarizeProfiles(ctx, scenario, window);
  }
}
