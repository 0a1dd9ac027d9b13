import { Pool } from "undici";
import type { Ctx } from "../lib/context.ts";
import { nowMs, summarize } from "../lib/stats.ts";
import { BENCH_KEY, BENCH_SECRET, signedHeaders, webhookBody } from "../lib/signing.ts";

/**
 * The machine's ceiling: an undici Pool (keep-alive, 64 connections, 128 requests in flight)
 * POSTing signed ~200-byte JSON bodies to the bare receiver process over loopback.
 */
export async function ceiling(ctx: Ctx): Promise<void> {
  const { receiver, opts } = ctx;
  const target = new URL(receiver.url("ceiling", 0));
  const client = new Pool(target.origin, { connections: 64, pipelining: 1, keepAliveTimeout: 30_000 });
  const inFlight = 128;
  const maxMs = 20_000;
  const post = async (n: number, tag: string) => {
    const body = webhookBody(n, nowMs());
    const res = await client.request({
      path: `/r/${tag}/ok/0`,
      method: "POST",
      headers: signedHeaders(BENCH_SECRET, BENCH_KEY, `msg_${tag}_${n}`, body),
      body,
    });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
  };
  const run = async (tag: string, total: number) => {
    let next = 0;
    let errors = 0;
    const latencies: number[] = [];
    const started = nowMs();
    const deadline = started + maxMs;
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < total && nowMs() < deadline) {
          const n = next++;
          const t0 = nowMs();
          await post(n, tag).catch(() => (errors += 1));
          latencies.push(nowMs() - t0);
        }
      }),
    );
    return { sent: next, errors, latencies, ms: nowMs() - started };
  };
  try {
    await run("ceiling-warmup", Math.min(5_000, opts.ceilingPosts));
    const result = await run("ceiling", opts.ceilingPosts);
    const stats = await receiver.stats("ceiling", true);
    const postsPerS = (result.sent - result.errors) / (result.ms / 1000);
    ctx.ceilingPostsPerS = postsPerS;
    const request = summarize(result.latencies);
    ctx.emit({
      scenario: "ceiling",
      deliveries_per_s: postsPerS,
      p50_ms: stats.latency_p50_ms ?? null,
      p99_ms: stats.latency_p99_ms ?? null,
      posts: result.sent,
      errors: result.errors,
      received: stats.delivered,
      duration_s: result.ms / 1000,
      request_p50_ms: request.p50,
      request_p99_ms: request.p99,
      connections: 64,
      in_flight: inFlight,
    });
  } finally {
    await client.close();
    await receiver.forget("ceiling");
    await receiver.forget("ceiling-warmup");
  }
}
