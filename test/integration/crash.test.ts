import { afterAll, describe, expect, inject, it } from "vitest";
import { createBackend, unavailable, type Backend, type Mode } from "../helpers/backends.ts";
import { startReceiver, type Receiver } from "../helpers/receiver.ts";
import { gqlAt, newAdminKey, spawnService, type ServiceProcess } from "../helpers/spawn.ts";
import { until } from "../helpers/verify.ts";

const EVENTS = 1_000;
const BATCH = 50;
const KILL_AFTER = 100;
const CONCURRENCY = 100;

/**
 * The worker's settings: a short timeout keeps the lease (timeout + 5 s) and BullMQ's lock short,
 * so what was in flight at the crash comes back within seconds.
 */
const WORKER_ENV = {
  WEBHOOK_TIMEOUT: "1s",
  WEBHOOK_SWEEP_INTERVAL: "500ms",
  // On a loaded machine a few attempts may time out (and be retried); enough retries that this
  // never disables the webhook, which would turn a slow machine into lost deliveries.
  WEBHOOK_RETRY_SCHEDULE: Array(10).fill("200ms").join(","),
  WORKER_CONCURRENCY: String(CONCURRENCY),
};

/**
 * postgres: ROLE=api + ROLE=worker on PostgreSQL and Redis (BullMQ); only the worker is killed.
 * embedded: one ROLE=all process on a PGlite DATA_DIR, killed and started again on the same
 * directory (its in-process queue dies with it; the sweeper must find everything again). Opt-in,
 * because it does not fit the time budget of a test file.
 */
function whyNot(mode: Mode): string | undefined {
  const reason = unavailable(mode);
  if (reason) return reason;
  if (mode === "embedded") {
    // Measured here: ~15 s to create the PGlite directory in a fresh process, ~12 s to publish 1,000
    // events through it, ~7 s to restart, plus the lease: over the 40 s budget of a test file.
    return globalThis.process.env.SPAWN_CRASH_EMBEDDED === "1"
      ? undefined
      : "slow (~40 s): set SPAWN_CRASH_EMBEDDED=1 to run it";
  }
  const { redis } = inject("services");
  return redis.available ? undefined : `Redis unavailable: ${redis.reason}`;
}

for (const mode of ["postgres", "embedded"] as const) {
  const reason = whyNot(mode);
  const suite = reason ? describe.skip : describe;

  suite(`a worker killed with SIGKILL while ${EVENTS} events are in flight [${mode}]${reason ? ` (skipped: ${reason})` : ""}`, () => {
    let backend: Backend;
    let receiver: Receiver;
    const processes: ServiceProcess[] = [];
    const adminKey = newAdminKey();

    afterAll(async () => {
      await Promise.all(processes.map((p) => p.dispose()));
      await receiver?.close();
      await backend?.dispose();
    });

    async function start(role: "all" | "api" | "worker"): Promise<ServiceProcess> {
      const process = await spawnService({ role, backend, adminKey, env: WORKER_ENV });
      processes.push(process);
      return process;
    }

    it("a new worker delivers every event: all deliveries succeed and the receiver saw every webhook-id", async () => {
      backend = await createBackend(mode);

      // The receiver answers after 5 ms. In embedded mode the API dies with the worker, so the
      // first answers also wait (at most 700 ms, inside the 1 s timeout) until every event is
      // stored: the crash then hits with all 1,000 events published and some attempts in flight.
      let published = false;
      let markPublished!: () => void;
      const allPublished = new Promise<void>((resolve) => (markPublished = resolve));
      receiver = await startReceiver(async (_req, _n, res) => {
        if (mode === "embedded" && !published) {
          await Promise.race([allPublished, new Promise((resolve) => setTimeout(resolve, 700))]);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
        res.writeHead(200).end("ok");
      });

      let api: ServiceProcess;
      let worker: ServiceProcess;
      if (mode === "postgres") {
        [api, worker] = await Promise.all([start("api"), start("worker")]);
      } else {
        api = worker = await start("all");
      }

      const account = await gqlAt(api.url, adminKey, `mutation { createAccount(name: "Crash") { apiKey } }`);
      expect(account.errors).toBeUndefined();
      const apiKey = account.data.createAccount.apiKey as string;
      const hook = await gqlAt(
        api.url,
        apiKey,
        `mutation ($url: String!) { createWebhook(input: { url: $url, events: [user_logged_in] }) { webhook { id } } }`,
        { url: receiver.url },
      );
      expect(hook.errors).toBeUndefined();

      // Kill the worker once the receiver has seen ~100 requests (in embedded mode: and all are published).
      // Then start a new worker at once (in embedded mode: the whole service again, on the same DATA_DIR).
      let distinctAtKill = -1;
      const killed = receiver.waitFor(KILL_AFTER, 60_000).then(async () => {
        if (mode === "embedded") await allPublished;
        distinctAtKill = new Set(receiver.requests.map((r) => r.headers["webhook-id"])).size;
        return worker.signal("SIGKILL");
      });
      const replaced = killed.then(() => start(mode === "postgres" ? "worker" : "all"));
      replaced.catch(() => {});

      const eventIds: string[] = [];
      for (let batch = 0; batch < EVENTS / BATCH; batch++) {
        const results = await Promise.all(
          Array.from({ length: BATCH }, (_, i) =>
            gqlAt(
              api.url,
              apiKey,
              `mutation ($user: String!) { publishEvent(input: { type: user_logged_in, data: { user_id: $user } }) { id } }`,
              { user: `user_${batch * BATCH + i}` },
            ),
          ),
        );
        for (const result of results) {
          expect(result.errors).toBeUndefined();
          eventIds.push(result.data.publishEvent.id);
        }
      }
      published = true;
      markPublished();
      expect(new Set(eventIds).size).toBe(EVENTS);

      const exit = await killed;
      expect(exit.signal).toBe("SIGKILL");
      // The crash happened with work left: not every event had reached the receiver.
      expect(distinctAtKill).toBeGreaterThan(0);
      expect(distinctAtKill).toBeLessThan(EVENTS);

      const replacement = await replaced;
      const reader = mode === "postgres" ? api : replacement;

      const list = async (status: string) => {
        type Row = { attemptCount: number; event: { id: string } };
        type Page = { deliveries: { edges: Array<{ node: Row }>; pageInfo: { hasNextPage: boolean; endCursor: string } } };
        const rows: Row[] = [];
        let after: string | null = null;
        for (;;) {
          const result: Awaited<ReturnType<typeof gqlAt<Page>>> = await gqlAt<Page>(
            reader.url,
            apiKey,
            `query ($status: DeliveryStatus, $after: String) { deliveries(status: $status, first: 100, after: $after) {
              edges { node { attemptCount event { id } } } pageInfo { hasNextPage endCursor } } }`,
            { status, after },
          );
          expect(result.errors).toBeUndefined();
          const connection = result.data!.deliveries;
          rows.push(...connection.edges.map((e) => e.node));
          if (!connection.pageInfo.hasNextPage) return rows;
          after = connection.pageInfo.endCursor;
        }
      };
      const pendingLeft = async () => {
        const result = await gqlAt(reader.url, apiKey, `{ deliveries(status: pending, first: 1) { edges { node { id } } } }`);
        expect(result.errors).toBeUndefined();
        return result.data.deliveries.edges.length;
      };

      await until(async () => (await pendingLeft()) === 0, {
        timeoutMs: 30_000,
        intervalMs: 250,
        what: "every delivery to leave pending",
        describe: () => new Set(receiver.requests.map((r) => r.headers["webhook-id"])).size,
      });

      const succeeded = await list("succeeded");
      expect(await list("failed")).toEqual([]);
      expect(succeeded).toHaveLength(EVENTS);
      expect(new Set(succeeded.map((d) => d.event.id))).toEqual(new Set(eventIds));

      const seen = receiver.requests.map((r) => String(r.headers["webhook-id"]));
      expect(new Set(seen)).toEqual(new Set(eventIds));
      // At least once, and the log knows every attempt except the ones in flight at the crash: at
      // most one per delivery (the lease), at most WORKER_CONCURRENCY in all.
      const requestsPerEvent = new Map<string, number>();
      for (const id of seen) requestsPerEvent.set(id, (requestsPerEvent.get(id) ?? 0) + 1);
      const unlogged = succeeded
        .map((d) => ({ eventId: d.event.id, extra: (requestsPerEvent.get(d.event.id) ?? 0) - d.attemptCount }))
        .filter((d) => d.extra > 0);
      expect(unlogged.filter((d) => d.extra > 1)).toEqual([]);
      expect(unlogged.length).toBeLessThanOrEqual(CONCURRENCY);

      const webhook = await gqlAt(reader.url, apiKey, `query ($id: ID!) { webhook(id: $id) { status } }`, {
        id: hook.data.createWebhook.webhook.id,
      });
      expect(webhook.data.webhook.status).toBe("active");
    });
  });
}
