/**
 * `npm run bench`: measures the machine's ceiling, a do-it-yourself BullMQ baseline, a bare
 * graphql-yoga API ceiling, then the service's scenarios. One JSON line per scenario on stdout,
 * progress and a final table on stderr. Everything started here is cleaned up at the end, also
 * after a failure or Ctrl-C.
 *
 *   npm run bench -- --help
 */
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { disposeAll, installExitHandlers } from "./lib/cleanup.ts";
import { makeEmitter, type Ctx, type Options } from "./lib/context.ts";
import { startReceiverProcess } from "./lib/receiver.ts";
import { createBackend, RUN_ID, startService, type BackendKind, type Service } from "./lib/service.ts";
import { printTable } from "./lib/table.ts";
import { monotonicUs, summarizeProfiles } from "./lib/profile.ts";
import { apiCeiling } from "./scenarios/api-ceiling.ts";
import { ceiling } from "./scenarios/ceiling.ts";
import { diyBullmq } from "./scenarios/diy-bullmq.ts";
import { fanout } from "./scenarios/fanout.ts";
import { ingest } from "./scenarios/ingest.ts";
import { logQuery } from "./scenarios/log-query.ts";
import { memory } from "./scenarios/memory.ts";
import { retryStorm } from "./scenarios/retry-storm.ts";
import { subscribers } from "./scenarios/subscribers.ts";
import { throughput } from "./scenarios/throughput.ts";

const HELP = `npm run bench -- [options]

  --scenario <name>        run only this scenario (prefix match; repeatable or comma-separated).
                           ceiling always runs first (every line reports its ratio to it).
                           Names: ceiling diy-bullmq api-ceiling ingest throughput-embedded
                           throughput-redis-postgres throughput-redis-postgres-split
                           fanout-1000-webhooks subscribers-1000 retry-storm log-query-1m memory
  --events <n>             events per throughput scenario (default 2000; x webhooks deliveries)
  --webhooks <n>           webhooks per account in throughput/ingest (default 10)
  --concurrency <n>        publishing clients in flight (default 32)
  --ingest-seconds <s>     duration of each ingest variant (default 3)
  --ceiling-posts <n>      posts of the ceiling measurement (default 60000)
  --diy-jobs <n>           jobs of the BullMQ baseline (default 15000)
  --fanout-webhooks <n>    default 1000;  --fanout-rounds <n> default 3
  --subscribers <n>        default 1000 (in --subscriber-accounts, default 100)
  --subscriber-rate <n>    events/s across the accounts (default 500) for --subscriber-seconds (default 4)
  --retry-events <n>       events of the retry storm (default 300, x webhooks deliveries)
  --log-sizes <a,b>        delivery-table sizes of log-query-1m (default 10000,1000000)
  --log-requests <n>       queries timed per size and query shape (default 100, at most 8 s)
  --memory-minutes <m>     run the memory scenario for m minutes (default: 0 = off; --scenario memory = 0.5)
  --memory-rate <n>        events/s of the memory scenario (default 1000)
  --memory-backends <list> backends of the memory scenario: embedded, redis-postgres,
                           redis-postgres-split (api + worker process) (default embedded)
  --stall-seconds <s>      stop waiting for deliveries after s seconds without progress (default 15)
  --worker-concurrency <n> WORKER_CONCURRENCY of the service (default: the service's)
  --profile <name>         write CPU profiles (node --cpu-prof) of the service in these scenarios
                           and print the top self-time functions; "shared-embedded" and
                           "shared-redis-postgres" profile the services that ingest, fanout
                           and retry-storm share (for their whole life)
  --profile-dir <dir>      where profiles go (default: a temp dir, kept)
  --no-redis               skip the variants that need Redis/PostgreSQL
`;

function list(values: string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(",")).map((v) => v.trim()).filter(Boolean);
}

function parseOptions(): Options {
  try {
    return readOptions();
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n(npm run bench -- --help lists the options)\n`);
    process.exit(2);
  }
}

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      help: { type: "boolean" },
      scenario: { type: "string", multiple: true },
      events: { type: "string" },
      webhooks: { type: "string" },
      concurrency: { type: "string" },
      "ingest-seconds": { type: "string" },
      "ingest-requests": { type: "string" },
      "ceiling-posts": { type: "string" },
      "diy-jobs": { type: "string" },
      "api-ceiling-requests": { type: "string" },
      "fanout-webhooks": { type: "string" },
      "fanout-rounds": { type: "string" },
      subscribers: { type: "string" },
      "subscriber-accounts": { type: "string" },
      "subscriber-rate": { type: "string" },
      "subscriber-seconds": { type: "string" },
      "retry-events": { type: "string" },
      "retry-schedule": { type: "string" },
      "log-sizes": { type: "string" },
      "log-requests": { type: "string" },
      "memory-minutes": { type: "string" },
      "memory-rate": { type: "string" },
      "memory-backends": { type: "string" },
      "stall-seconds": { type: "string" },
      "worker-concurrency": { type: "string" },
      profile: { type: "string", multiple: true },
      "profile-dir": { type: "string" },
      "no-redis": { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    process.stderr.write(HELP);
    process.exit(0);
  }
  const num = (name: keyof typeof values, fallback: number): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) {
      process.stderr.write(`--${name} must be a non-negative number\n`);
      process.exit(2);
    }
    return n;
  };
  return {
    scenarios: list(values.scenario),
    events: num("events", 2000),
    webhooks: num("webhooks", 10),
    concurrency: num("concurrency", 32),
    ingestSeconds: num("ingest-seconds", 3),
    ingestRequests: num("ingest-requests", 50_000),
    ceilingPosts: num("ceiling-posts", 60_000),
    diyJobs: num("diy-jobs", 15_000),
    apiCeilingRequests: num("api-ceiling-requests", 40_000),
    fanoutWebhooks: num("fanout-webhooks", 1000),
    fanoutRounds: num("fanout-rounds", 3),
    subscribers: num("subscribers", 1000),
    subscriberAccounts: num("subscriber-accounts", 100),
    subscriberRate: num("subscriber-rate", 500),
    subscriberSeconds: num("subscriber-seconds", 4),
    retryEvents: num("retry-events", 300),
    retrySchedule: values["retry-schedule"] ?? "200ms,500ms,1s",
    logQuerySizes: list(values["log-sizes"] ? [values["log-sizes"]] : ["10000,1000000"]).map(Number),
    logQueryRequests: num("log-requests", 100),
    memoryMinutes: num("memory-minutes", 0),
    memoryRate: num("memory-rate", 1000),
    memoryBackends: list(values["memory-backends"] ? [values["memory-backends"]] : ["embedded"]),
    stallSeconds: num("stall-seconds", 15),
    workerConcurrency: values["worker-concurrency"] ? num("worker-concurrency", 100) : null,
    profile: list(values.profile),
    profileDir: values["profile-dir"] ?? path.join(tmpdir(), `spawn-bench-profiles-${RUN_ID}`),
    noRedis: values["no-redis"] ?? false,
  };
}

interface Scenario {
  name: string;
  /** Needs PostgreSQL and Redis. */
  redis?: boolean;
  /** Runs by default (without --scenario). */
  byDefault?: boolean;
  run(ctx: Ctx): Promise<void>;
}

const SCENARIOS: Scenario[] = [
  { name: "diy-bullmq", redis: true, run: diyBullmq },
  { name: "api-ceiling", run: apiCeiling },
  { name: "throughput-embedded", run: (ctx) => throughput(ctx, "throughput-embedded", "embedded") },
  { name: "throughput-redis-postgres", redis: true, run: (ctx) => throughput(ctx, "throughput-redis-postgres", "redis-postgres") },
  {
    name: "throughput-redis-postgres-split",
    redis: true,
    run: (ctx) => throughput(ctx, "throughput-redis-postgres-split", "redis-postgres", true),
  },
  { name: "ingest", run: ingest },
  { name: "fanout-1000-webhooks", run: fanout },
  { name: "subscribers-1000", run: subscribers },
  { name: "retry-storm", run: retryStorm },
  { name: "log-query-1m", redis: true, run: logQuery },
  { name: "memory", byDefault: false, run: memory },
];

function selected(opts: Options, scenario: Scenario): boolean {
  if (scenario.redis && opts.noRedis) return false;
  if (opts.scenarios.length === 0) {
    return scenario.byDefault !== false || (scenario.name === "memory" && opts.memoryMinutes > 0);
  }
  return opts.scenarios.some((name) => scenario.name.startsWith(name) || name.startsWith(scenario.name));
}

async function main(): Promise<void> {
  installExitHandlers();
  const opts = parseOptions();
  const t0 = Date.now();
  const log = (message: string) => process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${message}\n`);
  if (opts.profile.length > 0) await mkdir(opts.profileDir, { recursive: true });
  log(`run ${RUN_ID}: starting the receiver process`);
  const receiver = await startReceiverProcess();

  const sharedServices = new Map<BackendKind, Promise<Service>>();
  const sharedReadyUs = new Map<BackendKind, number>();
  const ctx: Ctx = {
    opts,
    receiver,
    ceilingPostsPerS: null,
    apiCeilingRps: null,
    lines: [],
    emit: () => {},
    log,
    freshBackend: (kind) => createBackend(kind),
    serviceExtras(scenario) {
      if (!opts.profile.some((name) => scenario.startsWith(name))) return {};
      return { nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${path.join(opts.profileDir, scenario)}`] };
    },
    shared(kind) {
      let service = sharedServices.get(kind);
      if (!service) {
        service = (async () => {
          const backend = await createBackend(kind);
          const s = await startService({
            name: `shared-${kind}`,
            backend,
            ...ctx.serviceExtras(`shared-${kind}`),
            env: {
              WEBHOOK_RETRY_SCHEDULE: opts.retrySchedule,
              WEBHOOK_SWEEP_INTERVAL: "2s",
              ...(opts.workerConcurrency ? { WORKER_CONCURRENCY: String(opts.workerConcurrency) } : {}),
            },
          });
          log(`shared ${kind} service up in ${Math.round(s.startupMs)} ms (pid ${s.child.pid})`);
          sharedReadyUs.set(kind, monotonicUs());
          return s;
        })();
        sharedServices.set(kind, service);
      }
      return service;
    },
    async sharedIfFresh(kind) {
      return sharedServices.has(kind) ? undefined : ctx.shared(kind);
    },
  };
  ctx.emit = makeEmitter(ctx);

  const failures: string[] = [];
  try {
    log("ceiling: undici Pool -> bare node:http receiver (another process)");
    await ceiling(ctx);
    log(`ceiling: ${Math.round(ctx.ceilingPostsPerS ?? 0)} posts/s`);
    for (const scenario of SCENARIOS) {
      if (!selected(opts, scenario)) continue;
      if (scenario.name === "ingest" && ctx.apiCeilingRps === null && !selected(opts, SCENARIOS[1]!)) {
        await apiCeiling(ctx).catch((error: Error) => failures.push(`api-ceiling: ${error.message}`));
      }
      log(`${scenario.name}: start`);
      const started = Date.now();
      try {
        await scenario.run(ctx);
      } catch (error) {
        const message = (error as Error).stack ?? String(error);
        failures.push(`${scenario.name}: ${(error as Error).message}`);
        log(`${scenario.name}: FAILED ${message}`);
        ctx.emit({ scenario: scenario.name, deliveries_per_s: null, p50_ms: null, p99_ms: null, error: (error as Error).message.slice(0, 500) });
      }
      log(`${scenario.name}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  } finally {
    for (const [kind, service] of sharedServices) {
      const window = { startUs: sharedReadyUs.get(kind) ?? 0, endUs: monotonicUs() };
      await service.then((s) => s.stop()).catch(() => {});
      // From "listening" to the end of the last scenario (start-up left out).
      if (ctx.serviceExtras(`shared-${kind}`).nodeFlags) await summarizeProfiles(ctx, `shared-${kind}`, window).catch(() => {});
    }
    log("cleaning up");
    await disposeAll();
  }
  printTable(ctx, (Date.now() - t0) / 1000);
  if (failures.length > 0) {
    process.stderr.write(`\n${failures.length} scenario(s) failed:\n${failures.map((f) => `  - ${f}`).join("\n")}\n`);
    process.exitCode = 1;
  }
}

await main();
