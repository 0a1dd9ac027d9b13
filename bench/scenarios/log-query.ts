import pg from "pg";
import type { Ctx } from "../lib/context.ts";
import { gqlOk, pool } from "../lib/http.ts";
import { POSTGRES_URL, createAccount, createWebhooks, startService, type Account } from "../lib/service.ts";
import { nowMs, summarize } from "../lib/stats.ts";

const ACCOUNTS = 10;
const WEBHOOKS_PER_ACCOUNT = 10;
/** Deliveries per event (one per webhook of the event's account). */
const PER_EVENT = WEBHOOKS_PER_ACCOUNT;
/** Above this many new rows, secondary indexes are dropped and rebuilt around the insert (bulk load). */
const BULK = 100_000;

const NODE = `id status attemptCount createdAt lastAttemptAt event { id type } attempts { number responseStatus durationMs }`;
const BY_WEBHOOK = `query($id: ID!) { webhook(id: $id) { deliveries(first: 20) { edges { node { ${NODE} } } pageInfo { hasNextPage endCursor } } } }`;
const BY_FILTER = `query($id: ID!) { deliveries(webhookId: $id, first: 20) { edges { node { ${NODE} } } pageInfo { hasNextPage endCursor } } }`;

const pad = (expr: string) => `lpad((${expr})::text, 22, '0')`;

function label(size: number): string {
  return size >= 1_000_000 && size % 1_000_000 === 0 ? `${size / 1_000_000}m` : size >= 1000 && size % 1000 === 0 ? `${size / 1000}k` : String(size);
}

/**
 * Inserts deliveries [from, to): delivery g belongs to event g/10 of account (g/10)%10 and goes to
 * that account's webhook g%10; ids sort like the service's (newest = largest). One attempt per
 * delivery of the queried webhook (account 0, webhook 0: g % 100 = 0). Large batches load with the
 * secondary indexes dropped and rebuilt, and without FK triggers (rows are consistent by construction).
 */
async function insertRows(db: pg.Client, schema: string, accountIds: string[], webhooks: string[], from: number, to: number): Promise<void> {
  const bulk = to - from > BULK;
  await db.query("BEGIN");
  try {
    let indexes: Array<{ indexname: string; indexdef: string }> = [];
    if (bulk) {
      await db.query(`SET LOCAL session_replication_role = replica; SET LOCAL maintenance_work_mem = '256MB'`);
      ({ rows: indexes } = await db.query(
        `SELECT i.indexname, i.indexdef FROM pg_indexes i
         WHERE i.schemaname = $1 AND i.tablename IN ('Event', 'Delivery')
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)`,
        [schema],
      ));
      for (const { indexname } of indexes) await db.query(`DROP INDEX "${indexname}"`);
    }
    await db.query(
      `INSERT INTO "Event" (id, "accountId", type, "timestamp", data, "createdAt")
       SELECT 'evt_' || ${pad("e")}, ($1::text[])[1 + e % ${ACCOUNTS}], 'agent_created'::"EventType",
              extract(epoch from now())::int,
              json_build_object('agent_id', 'agent_' || e, 'name', 'Assistant', 'created_by', 'user_1'), now()
       FROM generate_series($2::bigint, $3::bigint - 1) AS e`,
      [accountIds, from / PER_EVENT, to / PER_EVENT],
    );
    await db.query(
      `INSERT INTO "Delivery" (id, "accountId", "webhookId", "eventId", "eventType", status, "attemptCount",
                               "lastAttemptAt", "nextAttemptAt", "createdAt", "updatedAt")
       SELECT 'dlv_' || ${pad("g")}, ($1::text[])[1 + (g / ${PER_EVENT}) % ${ACCOUNTS}],
              ($2::text[])[1 + ((g / ${PER_EVENT}) % ${ACCOUNTS}) * ${WEBHOOKS_PER_ACCOUNT} + g % ${PER_EVENT}],
              'evt_' || ${pad(`g / ${PER_EVENT}`)}, 'agent_created'::"EventType", 'succeeded'::"DeliveryStatus", 1,
              now(), NULL, now(), now()
       FROM generate_series($3::bigint, $4::bigint - 1) AS g`,
      [accountIds, webhooks, from, to],
    );
    await db.query(
      `INSERT INTO "DeliveryAttempt" (id, "deliveryId", number, "startedAt", "durationMs", "responseStatus", "responseBody", error, succeeded)
       SELECT 'att_' || ${pad("g")}, 'dlv_' || ${pad("g")}, 1, now(), 3, 200, 'ok', NULL, true
       FROM generate_series($1::bigint, $2::bigint - 1) AS g WHERE g % ${ACCOUNTS * WEBHOOKS_PER_ACCOUNT} = 0`,
      [from, to],
    );
    for (const { indexdef } of indexes) await db.query(indexdef);
    await db.query("COMMIT");
  } catch (error) {
    await db.query("ROLLBACK").catch(() => {});
    throw error;
  }
  await db.query(`ANALYZE "Event"; ANALYZE "Delivery"; ANALYZE "DeliveryAttempt"`);
}

/**
 * The delivery log of one webhook with 10,000 and then 1,000,000 deliveries in the table (on
 * PostgreSQL): 10 accounts x 10 webhooks, one event per 10 deliveries, rows inserted with
 * INSERT … SELECT generate_series, ANALYZEd. The queried webhook holds 1% of the rows. Reports
 * p50/p99 of `webhook(id){deliveries(first:20)}` and `deliveries(webhookId:, first:20)`, whether the
 * newest 20 come back first, and the plan of the SQL the service actually sent (sampled from
 * pg_stat_activity while the queries ran, then EXPLAIN ANALYZEd with the same values).
 */
export async function logQuery(ctx: Ctx): Promise<void> {
  const { opts, receiver } = ctx;
  const backend = await ctx.freshBackend("postgres");
  const schema = backend.schema!;
  const service = await startService({ name: "log-query", backend, ...ctx.serviceExtras("log-query-1m") });
  const db = new pg.Client({ connectionString: POSTGRES_URL, options: `-c search_path="${schema}"` });
  await db.connect();
  try {
    const accounts: Account[] = [];
    const webhooks: string[] = [];
    for (let a = 0; a < ACCOUNTS; a++) {
      const account = await createAccount(service, `log-${a}`);
      accounts.push(account);
      webhooks.push(
        ...(await createWebhooks(
          service,
          account,
          Array.from({ length: WEBHOOKS_PER_ACCOUNT }, (_, i) => receiver.url("log-query-unused", `${a}-${i}`)),
        )),
      );
    }
    const accountIds = accounts.map((a) => a.id);
    const target = webhooks[0]!;
    const key = accounts[0]!.apiKey;
    const values: Record<string, string> = { webhookId: target, accountId: accounts[0]!.id };
    const client = pool(service.origin, 4);
    let inserted = 0;
    for (const size of [...opts.logQuerySizes].sort((a, b) => a - b)) {
      const to = Math.ceil(size / PER_EVENT) * PER_EVENT;
      const t0 = nowMs();
      if (to > inserted) {
        ctx.log(`log-query: inserting deliveries ${inserted}..${to}`);
        await insertRows(db, schema, accountIds, webhooks, inserted, to);
        inserted = to;
      }
      const insertS = (nowMs() - t0) / 1000;
      const { rows: countRows } = await db.query(`SELECT count(*)::int AS n FROM "Delivery"`);
      const { rows: share } = await db.query(`SELECT count(*)::int AS n FROM "Delivery" WHERE "webhookId" = $1`, [target]);
      const { rows: newest } = await db.query(`SELECT id FROM "Delivery" WHERE "webhookId" = $1 ORDER BY id DESC LIMIT 20`, [target]);
      const expectedIds = JSON.stringify(newest.map((r: { id: string }) => r.id));

      const measure = async (query: string, pick: (d: any) => { edges: Array<{ node: { id: string } }> }) => {
        const first = pick(await gqlOk(client, key, query, { id: target }));
        const newestFirst = JSON.stringify(first.edges.map((e) => e.node.id)) === expectedIds;
        for (let i = 0; i < 20; i++) await gqlOk(client, key, query, { id: target });
        const sampler = sampleActiveSql();
        const latencies: number[] = [];
        const deadline = nowMs() + 8_000;
        for (let i = 0; i < opts.logQueryRequests && nowMs() < deadline; i++) {
          const t = nowMs();
          await gqlOk(client, key, query, { id: target });
          latencies.push(nowMs() - t);
        }
        const sql = await sampler.stop();
        const plan = sql ? await explainCaptured(db, sql.text, values).catch((error: Error) => ({ error: error.message })) : null;
        return { ...summarize(latencies), newestFirst, returned: first.edges.length, sql, plan };
      };
      const byWebhook = await measure(BY_WEBHOOK, (d) => d.webhook.deliveries);
      const byFilter = await measure(BY_FILTER, (d) => d.deliveries);
      const planFields = (prefix: string, m: typeof byWebhook) => {
        const plan = m.plan && !("error" in m.plan) ? m.plan : null;
        return {
          [`${prefix}explain_index_scan`]: plan ? plan.indexScan : null,
          [`${prefix}explain_first_line`]: plan ? plan.firstLine : null,
          [`${prefix}explain_index`]: plan ? plan.index : null,
          [`${prefix}explain_sort`]: plan ? plan.sort : null,
          [`${prefix}explain_rows_read`]: plan ? plan.rowsRead : null,
          [`${prefix}sql_has_limit`]: m.sql ? /\bLIMIT\b/i.test(m.sql.text) : null,
          [`${prefix}sql`]: m.sql ? m.sql.text.replaceAll(`"${schema}".`, "").slice(0, 600) : null,
          ...(m.plan && "error" in m.plan ? { [`${prefix}explain_error`]: m.plan.error } : {}),
        };
      };
      ctx.emit({
        scenario: `log-query-${label(size)}`,
        deliveries_per_s: null,
        p50_ms: byWebhook.p50,
        p99_ms: byWebhook.p99,
        query: "webhook(id){deliveries(first:20)}",
        deliveries_in_table: countRows[0].n,
        webhook_deliveries: share[0].n,
        requests: byWebhook.count,
        returned: byWebhook.returned,
        newest_first: byWebhook.newestFirst,
        ...planFields("", byWebhook),
        filter_query: "deliveries(webhookId:,first:20)",
        filter_p50_ms: byFilter.p50,
        filter_p99_ms: byFilter.p99,
        filter_newest_first: byFilter.newestFirst,
        ...planFields("filter_", byFilter),
        insert_s: insertS,
      });
    }
    await client.close();
  } finally {
    await db.end().catch(() => {});
    await service.stop();
  }
}

/**
 * Samples pg_stat_activity (every ~2 ms, on its own connection) for the statements that read
 * "Delivery" ordered by id: the text seen most often is where the query's time goes.
 */
function sampleActiveSql() {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  const seen = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    await client.connect();
    while (running) {
      const { rows } = await client.query(
        `SELECT query FROM pg_stat_activity
         WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE 'SELECT%FROM%"Delivery"%ORDER BY%'`,
      );
      for (const { query } of rows as Array<{ query: string }>) seen.set(query, (seen.get(query) ?? 0) + 1);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  })();
  return {
    async stop(): Promise<{ text: string; samples: number } | null> {
      running = false;
      await loop.catch(() => {});
      await client.end().catch(() => {});
      const top = [...seen].sort((a, b) => b[1] - a[1])[0];
      return top ? { text: top[0], samples: top[1] } : null;
    },
  };
}

/**
 * EXPLAIN ANALYZE of a captured statement: `$n` placeholders get the value of the column they are
 * compared with (`"webhookId" = $n`, `IN ($n)`), LIMIT 21 and OFFSET 0.
 */
async function explainCaptured(db: pg.Client, sql: string, values: Record<string, string>) {
  const params: unknown[] = [];
  const count = Math.max(0, ...[...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
  for (let n = 1; n <= count; n++) {
    const column = new RegExp(`"(\\w+)"\\s*(?:=|IN\\s*\\()\\s*\\$${n}\\b`).exec(sql)?.[1];
    if (column && values[column] !== undefined) params.push(values[column]);
    else if (new RegExp(`LIMIT\\s+\\$${n}\\b`).test(sql)) params.push(21);
    else if (new RegExp(`OFFSET\\s+\\$${n}\\b`).test(sql)) params.push(0);
    else throw new Error(`cannot tell what $${n} is`);
  }
  const { rows } = await db.query(`EXPLAIN (ANALYZE, TIMING OFF) ${sql}`, params);
  const lines = rows.map((r: Record<string, string>) => r["QUERY PLAN"]!);
  const text = lines.join("\n");
  const scans = lines.filter((l) => /Scan/.test(l));
  return {
    /** An (ordered) Index Scan or Index Only Scan; a Bitmap Index Scan feeding a Sort does not count. */
    indexScan: /(?<!Bitmap )Index (Only )?Scan/.test(text) && !/Seq Scan/.test(text),
    sort: /\bSort\b/.test(text),
    firstLine: lines[0]!.trim().replace(/"[\w]+"\./g, ""),
    index: /Index (?:Only )?Scan(?: Backward)? (?:using|on) "?(\w+)"?/.exec(text)?.[1] ?? null,
    /** Rows the table/index scans produced (actual, the largest scan node). */
    rowsRead: Math.max(...scans.map((l) => Number(/actual rows=(\d+)/.exec(l)?.[1] ?? 0)), 0),
  };
}
