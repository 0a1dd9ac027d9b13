import { cpus, loadavg } from "node:os";
import type { Ctx } from "./context.ts";

function fmt(value: unknown, digits = 0): string {
  if (value === null || value === undefined) return "-";
  if (typeof value === "number") return value.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

/** The human-readable summary on stderr. */
export function printTable(ctx: Ctx, totalSeconds: number): void {
  const header = ["scenario", "deliveries/s", "ratio", "p50 ms", "p99 ms", "notes"];
  const rows = ctx.lines.map((line) => {
    const l = line as Record<string, unknown>;
    const notes: string[] = [];
    const add = (label: string, key: string, digits = 0) => {
      if (l[key] !== undefined && l[key] !== null) notes.push(`${label} ${fmt(l[key], digits)}`);
    };
    add("req/s", "requests_per_s");
    add("vs api ceiling", "ratio_to_api_ceiling", 2);
    add("published", "published");
    add("delivered", "delivered");
    add("missing", "missing");
    add("dup", "duplicates");
    add("last receipt ms", "last_receipt_ms");
    add("msgs/s", "messages_per_s");
    add("lost", "messages_lost");
    add("failed", "failed");
    add("500s", "receiver_500s");
    add("explain index", "explain_index_scan");
    add("rss start MB", "rss_start_mb");
    add("rss end MB", "rss_end_mb");
    add("error", "error");
    return [
      String(l.scenario),
      fmt(l.deliveries_per_s),
      fmt(l.ratio, 3),
      fmt(l.p50_ms, 1),
      fmt(l.p99_ms, 1),
      notes.join(", "),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (i === 5 ? 0 : r[i]!.length))));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 || i === 5 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  const out = [
    "",
    `Spawn Webhooks benchmark — ceiling ${fmt(ctx.ceilingPostsPerS)} posts/s (undici -> bare receiver), api ceiling ${fmt(ctx.apiCeilingRps)} req/s; ${totalSeconds.toFixed(0)} s in all`,
    `${cpus().length} CPUs; 1-minute load average ${fmt(ctx.lines[0]?.load_avg_1m, 1)} at the first line, ${fmt(loadavg()[0], 1)} at the end (anything else running skews the numbers)`,
    line(header),
    line(header.map((_, i) => "-".repeat(widths[i]!))),
    ...rows.map(line),
    "",
  ];
  process.stderr.write(out.join("\n") + "\n");
}
