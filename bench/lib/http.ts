import { Pool } from "undici";
import { onCleanup } from "./cleanup.ts";
import { nowMs, sleep } from "./stats.ts";

/** A keep-alive undici pool to one origin, closed at cleanup. */
export function pool(origin: string, connections: number): Pool {
  const p = new Pool(origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  onCleanup(`pool ${origin}`, () => p.destroy());
  return p;
}

export interface GqlResult<T = any> {
  status: number;
  data?: T | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

/** POSTs a GraphQL operation. */
export async function gql<T = any>(
  p: Pool,
  key: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<GqlResult<T>> {
  const res = await p.request({
    path: "/graphql",
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}`, ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const text = await res.body.text();
  let body: { data?: T | null; errors?: GqlResult["errors"] } = {};
  try {
    body = JSON.parse(text);
  } catch {
    body = { errors: [{ message: `HTTP ${res.statusCode}: ${text.slice(0, 200)}` }] };
  }
  return { status: res.statusCode, ...body };
}

/** Like `gql` but throws on any error; returns `data`. */
export async function gqlOk<T = any>(
  p: Pool,
  key: string,
  query: string,
  variables?: Record<string, unknown>,
  headers?: Record<string, string>,
): Promise<T> {
  const result = await gql<T>(p, key, query, variables, headers);
  if (result.errors?.length || !result.data) {
    throw new Error(`GraphQL failed (${result.status}): ${JSON.stringify(result.errors ?? result).slice(0, 500)}`);
  }
  return result.data;
}

export interface LoadResult {
  attempted: number;
  ok: number;
  errors: number;
  firstError: string | null;
  /** Latency of every finished request (ms), successful or not. */
  latencies: number[];
  startedAt: number;
  endedAt: number;
  /** What each successful call returned (e.g. event ids). */
  values: unknown[];
}

/** `fn` returns a value on success and throws (or returns `undefined`) on failure. */
export type Call = (i: number) => Promise<unknown>;

function recorder() {
  const r: LoadResult = {
    attempted: 0,
    ok: 0,
    errors: 0,
    firstError: null,
    latencies: [],
    startedAt: nowMs(),
    endedAt: nowMs(),
    values: [],
  };
  const run = async (fn: Call, i: number, keepValues: boolean) => {
    r.attempted += 1;
    const t0 = nowMs();
    try {
      const value = await fn(i);
      if (value === undefined) throw new Error("no result");
      r.ok += 1;
      if (keepValues) r.values.push(value);
    } catch (error) {
      r.errors += 1;
      r.firstError ??= (error as Error).message?.slice(0, 300) ?? String(error);
    } finally {
      r.latencies.push(nowMs() - t0);
    }
  };
  return { r, run };
}

/**
 * Closed loop: `concurrency` callers, each issuing its next request when the previous one ends,
 * until `total` requests were issued or `maxMs` passed.
 */
export async function closedLoop(options: {
  concurrency: number;
  total: number;
  maxMs: number;
  fn: Call;
  keepValues?: boolean;
}): Promise<LoadResult> {
  const { r, run } = recorder();
  const deadline = nowMs() + options.maxMs;
  let next = 0;
  r.startedAt = nowMs();
  await Promise.all(
    Array.from({ length: Math.min(options.concurrency, options.total) }, async () => {
      while (next < options.total && nowMs() < deadline) {
        const i = next++;
        await run(options.fn, i, options.keepValues ?? false);
      }
    }),
  );
  r.endedAt = nowMs();
  return r;
}

/**
 * Open loop at a target rate: request i is issued at start + i/rate, unless `maxInFlight`
 * requests are already waiting (then it is issued late; `lateMs` says by how much at most).
 * Stops after `total` requests or `maxMs`.
 */
export async function pacedLoop(options: {
  ratePerS: number;
  total: number;
  maxMs: number;
  maxInFlight: number;
  fn: Call;
  keepValues?: boolean;
}): Promise<LoadResult & { maxLateMs: number }> {
  const { r, run } = recorder();
  const start = nowMs();
  r.startedAt = start;
  const deadline = start + options.maxMs;
  const interval = 1000 / options.ratePerS;
  let inFlight = 0;
  let maxLateMs = 0;
  const pending = new Set<Promise<void>>();
  for (let i = 0; i < options.total; i++) {
    const due = start + i * interval;
    let t = nowMs();
    if (due > t) {
      await sleep(Math.max(0, due - t - 0.5));
      t = nowMs();
    }
    while (inFlight >= options.maxInFlight) {
      await Promise.race(pending);
      t = nowMs();
    }
    if (t > deadline) break;
    maxLateMs = Math.max(maxLateMs, t - due);
    inFlight += 1;
    const p: Promise<void> = run(options.fn, i, options.keepValues ?? false).finally(() => {
      inFlight -= 1;
      pending.delete(p);
    });
    pending.add(p);
  }
  await Promise.all(pending);
  r.endedAt = nowMs();
  return { ...r, maxLateMs };
}
