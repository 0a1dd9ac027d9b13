/**
 * A bare node:http webhook receiver, run in its own process. It counts what arrives per tag
 * (the first path segment after /r/), so one receiver serves the whole run:
 *
 *   POST /r/<tag>/<mode>/<webhook>   a webhook request; mode `ok` answers 200, `flaky` answers
 *                                    500 to the first 0, 1 or 2 attempts of a (webhook, webhook-id)
 *                                    pair (chosen by a hash, so half of all requests fail) and 200 after
 *   GET  /stats?tag=<tag>[&full=1]   counts (and, with full=1, latency percentiles) as JSON
 *   POST /forget?tag=<tag>           drops a tag's state
 *
 * A delivery is a (webhook path, webhook-id header) pair answered 2xx; its latency is the receipt
 * time minus `data.sent_at` (wall-clock ms, set by the publisher) of the body.
 */
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

interface TagState {
  requests: number;
  ok: number;
  failed: number;
  badBodies: number;
  delivered: Set<string>;
  duplicates: number;
  attempts: Map<string, number>;
  latencies: number[];
  firstRequestAt: number | null;
  lastRequestAt: number | null;
  firstDeliveredAt: number | null;
  lastDeliveredAt: number | null;
  /** The smallest sent_at seen (the first publish, when the publisher stamps it). */
  minSentAt: number | null;
}

const tags = new Map<string, TagState>();

function state(tag: string): TagState {
  let s = tags.get(tag);
  if (!s) {
    s = {
      requests: 0,
      ok: 0,
      failed: 0,
      badBodies: 0,
      delivered: new Set(),
      duplicates: 0,
      attempts: new Map(),
      latencies: [],
      firstRequestAt: null,
      lastRequestAt: null,
      firstDeliveredAt: null,
      lastDeliveredAt: null,
      minSentAt: null,
    };
    tags.set(tag, s);
  }
  return s;
}

const now = () => performance.timeOrigin + performance.now();

/** 0, 1 or 2 failures before success, evenly spread: on average one failure per delivery. */
function plannedFailures(pair: string): number {
  return createHash("sha1").update(pair).digest()[0]! % 3;
}

function pick(sorted: Float64Array, p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

function stats(tag: string, full: boolean) {
  const s = tags.get(tag) ?? state(tag);
  const base = {
    tag,
    requests: s.requests,
    ok: s.ok,
    failed: s.failed,
    bad_bodies: s.badBodies,
    delivered: s.delivered.size,
    duplicates: s.duplicates,
    first_request_at: s.firstRequestAt,
    last_request_at: s.lastRequestAt,
    first_delivered_at: s.firstDeliveredAt,
    last_delivered_at: s.lastDeliveredAt,
    min_sent_at: s.minSentAt,
  };
  if (!full) return base;
  const sorted = Float64Array.from(s.latencies).sort();
  return {
    ...base,
    latency_p50_ms: pick(sorted, 50),
    latency_p90_ms: pick(sorted, 90),
    latency_p99_ms: pick(sorted, 99),
    latency_max_ms: sorted.length ? sorted[sorted.length - 1]! : null,
  };
}

const server = createServer((req, res) => {
  const url = req.url ?? "/";
  if (req.method === "GET" && url.startsWith("/stats")) {
    const params = new URL(url, "http://x").searchParams;
    const body = JSON.stringify(stats(params.get("tag") ?? "", params.get("full") === "1"));
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) }).end(body);
    return;
  }
  if (req.method === "POST" && url.startsWith("/forget")) {
    tags.delete(new URL(url, "http://x").searchParams.get("tag") ?? "");
    res.writeHead(204).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const at = now();
    // /r/<tag>/<mode>/<webhook>
    const [, r, tag = "", mode = "ok", hook = ""] = url.split("?")[0]!.split("/");
    if (r !== "r") {
      res.writeHead(404).end();
      return;
    }
    const s = state(tag);
    s.requests += 1;
    s.firstRequestAt ??= at;
    s.lastRequestAt = at;
    let sentAt: number | undefined;
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { data?: { sent_at?: unknown } };
      if (typeof body.data?.sent_at === "number") sentAt = body.data.sent_at;
    } catch {
      s.badBodies += 1;
    }
    const pair = `${hook}|${String(req.headers["webhook-id"] ?? "")}`;
    if (mode === "flaky") {
      const before = s.attempts.get(pair) ?? 0;
      s.attempts.set(pair, before + 1);
      if (before < plannedFailures(pair)) {
        s.failed += 1;
        res.writeHead(500, { "content-length": 4 }).end("fail");
        return;
      }
    }
    s.ok += 1;
    if (s.delivered.has(pair)) {
      s.duplicates += 1;
    } else {
      s.delivered.add(pair);
      s.firstDeliveredAt ??= at;
      s.lastDeliveredAt = at;
      if (sentAt !== undefined) {
        s.latencies.push(at - sentAt);
        if (s.minSentAt === null || sentAt < s.minSentAt) s.minSentAt = sentAt;
      }
    }
    res.writeHead(200, { "content-length": 2 }).end("ok");
  });
});
server.keepAliveTimeout = 30_000;
server.headersTimeout = 35_000;
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`receiver listening on http://127.0.0.1:${port}\n`);
});
process.on("SIGTERM", () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
