/** Percentile (nearest rank) of an unsorted list of numbers; null for an empty list. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return pickSorted(sorted, p);
}

export function pickSorted(sorted: ArrayLike<number>, p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export interface Summary {
  count: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) return { count: 0, p50: null, p99: null, max: null };
  const sorted = Float64Array.from(values).sort();
  return { count: sorted.length, p50: pickSorted(sorted, 50), p99: pickSorted(sorted, 99), max: sorted[sorted.length - 1]! };
}

/** Rounds to `digits` decimals, keeping null. */
export function round(value: number | null | undefined, digits = 1): number | null {
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
