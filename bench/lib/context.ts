import { loadavg } from "node:os";
import type { ReceiverHandle } from "./receiver.ts";
import { round } from "./stats.ts";
import type { Backend, BackendKind, Service } from "./service.ts";

export interface Options {
  /** Events published by the throughput scenarios (embedded / redis-postgres). */
  events: number;
  /** Only these scenarios (prefix match); empty = the default set. */
  scenarios: string[];
  /** Publishing clients in flight. */
  concurrency: number;
  /** Seconds each ingest variant runs (bounded also by --ingest-requests). */
  ingestSeconds: number;
  ingestRequests: number;
  /** Webhooks per account in throughput / ingest. */
  webhooks: number;
  /** Posts of the ceiling measurement. */
  ceilingPosts: number;
  diyJobs: number;
  apiCeilingRequests: number;
  fanoutWebhooks: number;
  fanoutRounds: number;
  subscribers: number;
  subscriberAccounts: number;
  subscriberRate: number;
  subscriberSeconds: number;
  retryEvents: number;
  retrySchedule: string;
  logQuerySizes: number[];
  logQueryRequests: number;
  /** Minutes of the memory scenario; 0 = not run (unless named with --scenario). */
  memoryMinutes: number;
  memoryRate: number;
  /** Backends the memory scenario runs on ("memory" = embedded, "memory-redis-postgres"). */
  /** embedded, redis-postgres, or redis-postgres-split (api and worker processes) */
  memoryBackends: string[];
  /** Stop waiting for deliveries when nothing arrived for this long. */
  stallSeconds: number;
  /** Write a CPU profile of the service processes of these scenarios (prefix match). */
  profile: string[];
  profileDir: string;
  /** Skip the redis-postgres variants. */
  noRedis: boolean;
  workerConcurrency: number | null;
}

/** One JSON line on stdout per scenario; these keys always, numbers or null. */
export interface Line {
  scenario: string;
  deliveries_per_s: number | null;
  p50_ms: number | null;
  p99_ms: number | null;
  [key: string]: unknown;
}

export interface Ctx {
  opts: Options;
  receiver: ReceiverHandle;
  ceilingPostsPerS: number | null;
  apiCeilingRps: number | null;
  lines: Array<Line & { ceiling_posts_per_s: number | null; ratio: number | null }>;
  emit(line: Line): void;
  log(message: string): void;
  /** A service shared by scenarios that do not need a fresh one (started on first use). */
  shared(kind: BackendKind): Promise<Service>;
  /**
   * The shared service if this call starts it (so it is fresh: a new database), else undefined.
   * Lets a scenario that needs a fresh service hand it on to the others instead of starting two.
   */
  sharedIfFresh(kind: BackendKind): Promise<Service | undefined>;
  /** Extra service env and node flags for a scenario (CPU profile when asked). */
  serviceExtras(scenario: string): { nodeFlags?: string[] };
  freshBackend(kind: BackendKind): Promise<Backend>;
}

export function makeEmitter(ctx: Pick<Ctx, "lines" | "ceilingPostsPerS">) {
  return (line: Line) => {
    const ceiling = ctx.ceilingPostsPerS;
    const ratio = line.deliveries_per_s !== null && ceiling ? line.deliveries_per_s / ceiling : null;
    const full: Record<string, unknown> = {
      scenario: line.scenario,
      deliveries_per_s: null,
      ceiling_posts_per_s: round(ceiling, 1),
      ratio: null,
      p50_ms: null,
      p99_ms: null,
    };
    Object.assign(full, line, {
      deliveries_per_s: round(line.deliveries_per_s, 1),
      ceiling_posts_per_s: round(ceiling, 1),
      ratio: round(ratio, 4),
      p50_ms: round(line.p50_ms, 2),
      p99_ms: round(line.p99_ms, 2),
      // Other work on the machine skews every number: the 1-minute load average when the line was written.
      load_avg_1m: round(loadavg()[0], 2),
    });
    // Numbers stay numbers (3 decimals at most); NaN/Infinity become null.
    for (const [key, value] of Object.entries(full)) {
      if (typeof value === "number") full[key] = Number.isFinite(value) ? round(value, Math.abs(value) >= 100 ? 1 : 3) : null;
    }
    ctx.lines.push(full as never);
    process.stdout.write(`${JSON.stringify(full)}\n`);
  };
}
