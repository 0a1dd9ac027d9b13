import { Pool } from "undici";
import { onCleanup } from "./cleanup.ts";
import { startChild, type Child } from "./procs.ts";
import { sleep } from "./stats.ts";

export interface ReceiverStats {
  tag: string;
  requests: number;
  ok: number;
  failed: number;
  bad_bodies: number;
  delivered: number;
  duplicates: number;
  first_request_at: number | null;
  last_request_at: number | null;
  first_delivered_at: number | null;
  last_delivered_at: number | null;
  min_sent_at: number | null;
  latency_p50_ms?: number | null;
  latency_p90_ms?: number | null;
  latency_p99_ms?: number | null;
  latency_max_ms?: number | null;
}

export interface ReceiverHandle {
  origin: string;
  child: Child;
  /** The URL of webhook `n` under `tag`. */
  url(tag: string, n: number | string, mode?: "ok" | "flaky"): string;
  stats(tag: string, full?: boolean): Promise<ReceiverStats>;
  forget(tag: string): Promise<void>;
  /**
   * Polls until `expected` deliveries arrived, nothing new arrived for `stallMs`, or `maxMs`
   * passed; returns the final (full) stats and why it stopped.
   */
  waitForDeliveries(
    tag: string,
    expected: number,
    options: { stallMs: number; maxMs: number; onProgress?: (s: ReceiverStats) => void },
  ): Promise<{ stats: ReceiverStats; reason: "complete" | "stalled" | "timeout" }>;
}

export async function startReceiverProcess(): Promise<ReceiverHandle> {
  const child = await startChild({
    name: "receiver",
    script: "bench/receiver-process.ts",
    ready: /listening on (\S+)/,
    timeoutMs: 30_000,
  });
  const origin = child.ready[1]!;
  const control = new Pool(origin, { connections: 2 });
  onCleanup("receiver control pool", () => control.close());

  const get = async <T>(path: string, method: "GET" | "POST" = "GET"): Promise<T> => {
    const res = await control.request({ path, method, headersTimeout: 30_000, bodyTimeout: 30_000 });
    const text = await res.body.text();
    return (text ? JSON.parse(text) : undefined) as T;
  };

  const handle: ReceiverHandle = {
    origin,
    child,
    url: (tag, n, mode = "ok") => `${origin}/r/${tag}/${mode}/${n}`,
    stats: (tag, full = false) => get<ReceiverStats>(`/stats?tag=${encodeURIComponent(tag)}${full ? "&full=1" : ""}`),
    forget: (tag) => get<void>(`/forget?tag=${encodeURIComponent(tag)}`, "POST"),
    async waitForDeliveries(tag, expected, { stallMs, maxMs, onProgress }) {
      const started = Date.now();
      let last = -1;
      let lastChange = Date.now();
      for (;;) {
        const s = await handle.stats(tag);
        onProgress?.(s);
        if (s.delivered !== last) {
          last = s.delivered;
          lastChange = Date.now();
        }
        const reason =
          s.delivered >= expected
            ? "complete"
            : Date.now() - lastChange > stallMs
              ? "stalled"
              : Date.now() - started > maxMs
                ? "timeout"
                : undefined;
        if (reason) return { stats: await handle.stats(tag, true), reason };
        await sleep(100);
      }
    },
  };
  return handle;
}
