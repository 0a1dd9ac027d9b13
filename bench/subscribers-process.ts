/**
 * graphql-ws subscribers in a process of their own (so their CPU is not the service's), driven
 * over IPC by the harness: connect, stats, reset, close. Each subscriber runs
 * `subscription { events(types: [agent_created]) { id data } }` with its account's key and records,
 * per message, the receipt time minus `data.sent_at`. Messages with `data.warm` only mark the
 * subscriber live (the server is known to listen) and are not counted.
 */
import { createClient, type Client } from "graphql-ws";
import WebSocket from "ws";

interface Sub {
  account: string;
  client: Client;
  connected: boolean;
  live: boolean;
  closed: boolean;
  seen: Set<string>;
}

const subs: Sub[] = [];
let latencies = new Float64Array(1 << 16);
let latencyCount = 0;
let received = 0;
let duplicates = 0;
let foreign = 0;
let errors = 0;
let firstError: string | null = null;
let firstAt: number | null = null;
let lastAt: number | null = null;
const now = () => performance.timeOrigin + performance.now();

function record(latency: number): void {
  if (latencyCount === latencies.length) {
    const bigger = new Float64Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
  }
  latencies[latencyCount++] = latency;
}

const QUERY = "subscription { events(types: [agent_created]) { id data } }";

function connectOne(wsUrl: string, account: string, apiKey: string): Sub {
  const sub: Sub = { account, client: undefined as never, connected: false, live: false, closed: false, seen: new Set() };
  sub.client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${apiKey}` },
    lazy: false,
    retryAttempts: 0,
    on: {
      connected: () => (sub.connected = true),
      closed: () => (sub.closed = true),
      error: (error) => {
        errors += 1;
        firstError ??= String((error as Error)?.message ?? error);
      },
    },
  });
  sub.client.subscribe<{ events: { id: string; data: { sent_at?: number; warm?: boolean; account?: string } } }>(
    { query: QUERY },
    {
      next: (result) => {
        const at = now();
        const event = result.data?.events;
        if (!event) {
          errors += 1;
          firstError ??= JSON.stringify(result.errors ?? result).slice(0, 300);
          return;
        }
        if (event.data.warm) {
          sub.live = true;
          return;
        }
        if (event.data.account !== undefined && event.data.account !== account) {
          foreign += 1;
          return;
        }
        if (sub.seen.has(event.id)) {
          duplicates += 1;
          return;
        }
        sub.seen.add(event.id);
        received += 1;
        firstAt ??= at;
        lastAt = at;
        if (typeof event.data.sent_at === "number") record(at - event.data.sent_at);
      },
      error: (error) => {
        errors += 1;
        firstError ??= String((error as Error)?.message ?? JSON.stringify(error)).slice(0, 300);
      },
      complete: () => {},
    },
  );
  return sub;
}

function pick(sorted: Float64Array, p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

type Command =
  | { cmd: "connect"; id: string; wsUrl: string; groups: Array<{ account: string; apiKey: string; count: number }> }
  | { cmd: "stats"; id: string; full?: boolean }
  | { cmd: "reset"; id: string }
  | { cmd: "close"; id: string };

async function handle(message: Command): Promise<unknown> {
  switch (message.cmd) {
    case "connect": {
      for (const group of message.groups) {
        for (let i = 0; i < group.count; i++) {
          subs.push(connectOne(message.wsUrl, group.account, group.apiKey));
          // Spread the handshakes a little (each one authenticates against the database).
          if (subs.length % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      return { subscribers: subs.length };
    }
    case "stats": {
      const base = {
        subscribers: subs.length,
        connected: subs.filter((s) => s.connected && !s.closed).length,
        live: subs.filter((s) => s.live).length,
        closed: subs.filter((s) => s.closed).length,
        received,
        duplicates,
        foreign,
        errors,
        first_error: firstError,
        first_at: firstAt,
        last_at: lastAt,
        per_account: message.full ? perAccount() : undefined,
      };
      if (!message.full) return base;
      const sorted = latencies.slice(0, latencyCount).sort();
      return { ...base, p50_ms: pick(sorted, 50), p99_ms: pick(sorted, 99), max_ms: pick(sorted, 100) };
    }
    case "reset": {
      for (const s of subs) s.seen.clear();
      latencyCount = 0;
      received = duplicates = foreign = 0;
      firstAt = lastAt = null;
      return {};
    }
    case "close": {
      await Promise.all(subs.map((s) => s.client.dispose()));
      subs.length = 0;
      latencyCount = 0;
      received = duplicates = foreign = errors = 0;
      firstError = null;
      firstAt = lastAt = null;
      return {};
    }
  }
}

/** Unique messages received per account (by its subscribers), to compare with what was published. */
function perAccount(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of subs) out[s.account] = (out[s.account] ?? 0) + s.seen.size;
  return out;
}

process.on("message", (message: Command) => {
  handle(message).then(
    (result) => process.send!({ id: message.id, result }),
    (error: Error) => process.send!({ id: message.id, error: error.message }),
  );
});
process.on("disconnect", () => process.exit(0));
process.on("SIGTERM", () => process.exit(0));
process.stdout.write("subscribers ready\n");
