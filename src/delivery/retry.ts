import { formatDuration } from "../lib/duration.ts";
import type { AttemptResult } from "./http.ts";

/**
 * What follows an attempt (svix `retry_schedule`, outpost `shouldScheduleRetry`):
 * - `delivered`: a 2xx arrived in time;
 * - `retry`: try again after `delayMs`;
 * - `give-up`: the last scheduled attempt failed; `disable` says whether the webhook goes off
 *   (true for the scheduled run, false for a manual `retryDelivery` that failed again).
 */
export type Outcome =
  | { kind: "delivered" }
  | { kind: "retry"; delayMs: number }
  | { kind: "give-up"; disable: boolean; reason: string };

/**
 * `number` is the attempt just made (1 = first). The schedule's length is the number of retries,
 * so the scheduled run has `schedule.length + 1` attempts; later numbers are manual retries.
 */
export function classify(result: AttemptResult, number: number, schedule: readonly number[]): Outcome {
  if (result.succeeded) return { kind: "delivered" };
  const delayMs = schedule[number - 1];
  if (delayMs !== undefined) return { kind: "retry", delayMs };
  const what = result.error ?? (result.responseStatus ? `HTTP ${result.responseStatus}` : "failed");
  const total = schedule.length + 1;
  return {
    kind: "give-up",
    disable: number === total,
    reason: `${total} attempts failed (retries after ${schedule.map(formatDuration).join(", ") || "none"}); last: ${what}`,
  };
}
