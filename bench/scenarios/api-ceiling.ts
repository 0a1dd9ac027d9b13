import type { Ctx } from "../lib/context.ts";
import { closedLoop, gql, pool } from "../lib/http.ts";
import { startChild } from "../lib/procs.ts";
import { summarize } from "../lib/stats.ts";

/** graphql-yoga alone (another process), `{ __typename }` with a bearer check, 64 requests in flight. */
export async function apiCeiling(ctx: Ctx): Promise<void> {
  const { opts } = ctx;
  const token = "sk_bench_api_ceiling";
  const child = await startChild({
    name: "api-ceiling",
    script: "bench/api-ceiling-process.ts",
    env: { ...process.env, BENCH_API_TOKEN: token },
    ready: /listening on (\S+)/,
  });
  const url = new URL(child.ready[1]!);
  const client = pool(url.origin, 64);
  try {
    const call = async () => {
      const result = await gql(client, token, "{ __typename }");
      return result.data?.__typename === "Query" ? true : undefined;
    };
    await closedLoop({ concurrency: 64, total: 2_000, maxMs: 3_000, fn: call });
    const result = await closedLoop({ concurrency: 64, total: opts.apiCeilingRequests, maxMs: 6_000, fn: call });
    const rps = result.ok / ((result.endedAt - result.startedAt) / 1000);
    ctx.apiCeilingRps = rps;
    const latency = summarize(result.latencies);
    ctx.emit({
      scenario: "api-ceiling",
      deliveries_per_s: null,
      p50_ms: latency.p50,
      p99_ms: latency.p99,
      requests_per_s: rps,
      requests: result.attempted,
      errors: result.errors,
      in_flight: 64,
    });
  } finally {
    await client.close();
    await child.stop();
  }
}
