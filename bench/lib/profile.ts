import { readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Ctx } from "./context.ts";

/** A measured window in CLOCK_MONOTONIC microseconds (the clock of V8's profile timestamps). */
export interface ProfileWindow {
  startUs: number;
  endUs: number;
}

/** Now, in the clock of CPU profiles (CLOCK_MONOTONIC, µs). */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

function place(url: string): string {
  if (!url) return "(native)";
  const clean = url.replace(/^file:\/\//, "");
  const nm = clean.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = clean.slice(nm + "node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (clean.startsWith("node:")) return clean;
  const src = clean.indexOf("/src/");
  return src >= 0 ? clean.slice(src + 1) : path.basename(clean);
}

/**
 * Summarises the V8 CPU profiles written by `node --cpu-prof` into the scenario's profile
 * directory: top functions and top packages by self time, to stderr and a .txt beside them.
 */
export async function summarizeProfiles(ctx: Ctx, scenario: string, window?: ProfileWindow): Promise<void> {
  const dir = path.join(ctx.opts.profileDir, scenario);
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile"));
  } catch {
    return;
  }
  const lines: string[] = [];
  for (const file of files) {
    const profile = JSON.parse(await readFile(path.join(dir, file), "utf8")) as {
      nodes: ProfileNode[];
      startTime: number;
      endTime: number;
      samples?: number[];
      timeDeltas?: number[];
    };
    // Hits per node: all samples, or only those inside the measured window.
    const hitsOf = new Map<number, number>();
    let from = profile.startTime;
    let to = profile.endTime;
    if (window && profile.samples && profile.timeDeltas) {
      let t = profile.startTime;
      for (let i = 0; i < profile.samples.length; i++) {
        t += profile.timeDeltas[i] ?? 0;
        if (t < window.startUs || t > window.endUs) continue;
        hitsOf.set(profile.samples[i]!, (hitsOf.get(profile.samples[i]!) ?? 0) + 1);
      }
      from = Math.max(from, window.startUs);
      to = Math.min(to, window.endUs);
    } else {
      for (const node of profile.nodes) hitsOf.set(node.id, node.hitCount ?? 0);
    }
    const totalHits = [...hitsOf.values()].reduce((a, b) => a + b, 0) || 1;
    const totalMs = Math.max(0, to - from) / 1000;
    const byFunction = new Map<string, number>();
    const byPlace = new Map<string, number>();
    for (const node of profile.nodes) {
      const hits = hitsOf.get(node.id) ?? 0;
      if (!hits) continue;
      const { functionName, url, lineNumber } = node.callFrame;
      const key = `${functionName || "(anonymous)"}  ${place(url)}${url ? `:${lineNumber + 1}` : ""}`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + hits);
      const where = functionName.startsWith("(") ? functionName : place(url);
      byPlace.set(where, (byPlace.get(where) ?? 0) + hits);
    }
    const idle = byFunction.get("(idle)  (native)") ?? 0;
    if (idle / totalHits > 0.85) {
      lines.push(`CPU profile ${file}: ${((100 * idle) / totalHits).toFixed(0)}% idle (a helper thread, e.g. the tsx loader); skipped`);
      continue;
    }
    const pct = (hits: number) => `${((100 * hits) / totalHits).toFixed(1).padStart(5)}%`;
    lines.push(
      `CPU profile ${file} (${(totalMs / 1000).toFixed(1)} s ${window ? "of the measured window" : "whole process life"}, ${totalHits} samples)`,
    );
    lines.push("  top self time by function:");
    for (const [key, hits] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 25)) lines.push(`   ${pct(hits)}  ${key}`);
    lines.push("  self time by package / file:");
    for (const [key, hits] of [...byPlace].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`   ${pct(hits)}  ${key}`);
  }
  const text = lines.join("\n");
  await writeFile(path.join(dir, "summary.txt"), `${text}\n`);
  process.stderr.write(`\n${text}\n(profiles and summary in ${dir})\n\n`);
}
