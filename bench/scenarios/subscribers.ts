import type { Ctx } from "../lib/context.ts";
import { closedLoop, gql, pacedLoop, pool, type LoadResult } from "../lib/http.ts";
import { ipcRequest, startChild, type Child } from "../lib/procs.ts";
import { summarizeProfiles } from "../lib/profile.ts";
import { createAccount, eventData, PUBLISH_MUTATION, startService, type Account, type Service } from "../lib/service.ts";
import { nowMs, sleep, summarize } from "../lib/stats.ts";

interface SubStats {
  subscribers: number;
  connected: number;
  live: number;
  closed: number;
  received: number;
  duplicates: number;
  foreign: number;
  errors: number;
  first_error: string | null;
  first_at: number | null;
  last_at: number | null;
  per_account?: Record<string, number>;
  p50_ms?: number | null;
  p99_ms?: number | null;
  max_ms?: number | null;
}

async function publish(client: ReturnType<typeof pool>, account: Account, extra: Record<string, unknown>): Promise<string | undefined> {
  const result = await gql<{ publishEvent: { id: string } }>(client, account.apiKey, PUBLISH_MUTATION, {
    input: { type: "agent_created", data: { ...eventData("sub"), account: account.id, ...extra } },
  });
  if (result.errors?.length) throw new Error(`${result.status} ${result.errors[0]!.message}`);
  return result.data?.publishEvent.id;
}

/** Connects the subscribers and publishes warm-up events until every one of them has seen one. */
async function connectAndWarm(ctx: Ctx, child: Child, service: Service, client: ReturnType<typeof pool>, groups: Array<{ account: Account; count: number }>) {
  const t0 = nowMs();
  await ipcRequest(child.child, {
    cmd: "connect",
    wsUrl: service.wsUrl,
    groups: groups.map((g) => ({ account: g.account.id, apiKey: g.account.apiKey, count: g.count })),
  });
  const total = groups.reduce((n, g) => n + g.count, 0);
  const deadline = nowMs() + 60_000;
  let stats: SubStats;
  for (;;) {
    stats = await ipcRequest<SubStats>(child.child, { cmd: "stats" });
    if (stats.connected >= total || nowMs() > deadline || stats.closed > 0) break;
    await sleep(100);
  }
  const connectMs = nowMs() - t0;
  while (nowMs() < deadline) {
    stats = await ipcRequest<SubStats>(child.child, { cmd: "stats" });
    if (stats.live >= total) break;
    await Promise.all(groups.map((g) => publish(client, g.account, { warm: true }).catch(() => undefined)));
    await sleep(500);
  }
  await ipcRequest(child.child, { cmd: "reset" });
  return { connectMs, stats: stats! };
}

/** Waits until the subscribers hold `expected` messages or nothing arrives for a while. */
async function drain(ctx: Ctx, child: Child, expected: number): Promise<SubStats> {
  const deadline = nowMs() + 120_000;
  let last = -1;
  let lastChange = nowMs();
  for (;;) {
    const s = await ipcRequest<SubStats>(child.child, { cmd: "stats" });
    if (s.received !== last) {
      last = s.received;
      lastChange = nowMs();
    }
    if (s.received >= expected || nowMs() - lastChange > Math.min(5_000, ctx.opts.stallSeconds * 1000) || nowMs() > deadline) {
      return ipcRequest<SubStats>(child.child, { cmd: "stats", full: true }, 120_000);
    }
    await sleep(100);
  }
}

/**
 * 1,000 graphql-ws subscribers (another process): 10 in each of 100 accounts while events are
 * published across the accounts at a target rate; then all 1,000 on one account, publishing as
 * fast as the service takes it.
 */
export async function subscribers(ctx: Ctx): Promise<void> {
  const { opts } = ctx;
  // A service of its own: on the shared one, right after ingest and fanout, main-thread bursts of
  // WebSocket writes pushed p99 from ~45 ms to 0.1-1.7 s (cause not pinned down; see README).
  const extras = ctx.serviceExtras("subscribers-1000");
  const service = await startService({ name: "subscribers", backend: await ctx.freshBackend("embedded"), ...extras });
  const child = await startChild({ name: "subscribers", script: "bench/subscribers-process.ts", ready: /subscribers ready/, ipc: true });
  const client = pool(service.origin, 64);
  try {
    // 1. Spread across accounts, at a target rate.
    const perAccount = Math.max(1, Math.round(opts.subscribers / opts.subscriberAccounts));
    const accounts: Account[] = [];
    for (let i = 0; i < opts.subscriberAccounts; i++) accounts.push(await createAccount(service, `subs-${i}`));
    const groups = accounts.map((account) => ({ account, count: perAccount }));
    const total = perAccount * accounts.length;
    ctx.log(`subscribers-1000: connecting ${total} subscribers in ${accounts.length} accounts`);
    const warm = await connectAndWarm(ctx, child, service, client, groups);
    ctx.log(`subscribers-1000: ${warm.stats.connected} connected in ${Math.round(warm.connectMs)} ms, ${warm.stats.live} live`);
    const byAccount = new Map<string, number>();
    const events = Math.round(opts.subscriberRate * opts.subscriberSeconds);
    const run = await pacedLoop({
      ratePerS: opts.subscriberRate,
      total: events,
      maxMs: opts.subscriberSeconds * 1000 + 1_000,
      maxInFlight: 64,
      keepValues: true,
      fn: async (i) => {
        const account = accounts[i % accounts.length]!;
        const id = await publish(client, account, {});
        if (id) byAccount.set(account.id, (byAccount.get(account.id) ?? 0) + 1);
        return id;
      },
    });
    const expected = [...byAccount.values()].reduce((n, count) => n + count * perAccount, 0);
    const stats = await drain(ctx, child, expected);
    emit(ctx, "subscribers-1000", run, stats, expected, {
      accounts: accounts.length,
      subscribers_per_account: perAccount,
      target_events_per_s: opts.subscriberRate,
      live_before_run: warm.stats.live,
      connect_ms: warm.connectMs,
      max_publish_late_ms: run.maxLateMs,
    });
    await ipcRequest(child.child, { cmd: "close" });

    // 2. All on one account: as many messages per second as the service gets out.
    const one = await createAccount(service, "subs-one");
    const warmOne = await connectAndWarm(ctx, child, service, client, [{ account: one, count: total }]);
    ctx.log(`subscribers-1000-one-account: ${warmOne.stats.live} live; publishing for ${opts.subscriberSeconds} s`);
    const runOne = await closedLoop({
      concurrency: 4,
      total: 2_000,
      maxMs: opts.subscriberSeconds * 1000,
      keepValues: true,
      fn: () => publish(client, one, {}),
    });
    const expectedOne = runOne.ok * total;
    const statsOne = await drain(ctx, child, expectedOne);
    emit(ctx, "subscribers-1000-one-account", runOne, statsOne, expectedOne, {
      accounts: 1,
      subscribers_per_account: total,
      live_before_run: warmOne.stats.live,
      connect_ms: warmOne.connectMs,
    });
    await ipcRequest(child.child, { cmd: "close" });
  } finally {
    await client.close();
    await child.stop(5_000);
    await service.stop();
    if (extras.nodeFlags) await summarizeProfiles(ctx, "subscribers-1000");
  }
}

function emit(ctx: Ctx, scenario: string, run: LoadResult, stats: SubStats, expected: number, extra: Record<string, unknown>) {
  const seconds = ((stats.last_at ?? nowMs()) - run.startedAt) / 1000;
  const publishLatency = summarize(run.latencies);
  const messagesPerS = stats.received / seconds;
  ctx.emit({
    scenario,
    // Messages delivered to subscribers, per second from the first publish to the last receipt.
    deliveries_per_s: messagesPerS,
    p50_ms: stats.p50_ms ?? null,
    p99_ms: stats.p99_ms ?? null,
    messages_per_s: messagesPerS,
    subscribers: stats.subscribers,
    published: run.ok,
    publish_errors: run.errors,
    publish_per_s: run.ok / ((run.endedAt - run.startedAt) / 1000),
    publish_p50_ms: publishLatency.p50,
    publish_p99_ms: publishLatency.p99,
    messages_expected: expected,
    messages_received: stats.received,
    messages_lost: Math.max(0, expected - stats.received),
    duplicates: stats.duplicates,
    cross_account_messages: stats.foreign,
    subscriber_errors: stats.errors,
    sockets_closed: stats.closed,
    latency_max_ms: stats.max_ms ?? null,
    duration_s: seconds,
    ...extra,
    first_error: stats.first_error ?? run.firstError,
  });
}
