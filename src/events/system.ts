import type { EventType } from "./catalog.ts";
import { publishEvent, type PublishDeps } from "./publish.ts";

/**
 * Publishes an event the service itself raises for an account (`rate_limit_exceeded`,
 * `server_error`). Best effort: a failure is logged, never thrown at the request that caused it.
 */
export async function emitSystemEvent(
  deps: PublishDeps,
  accountId: string,
  type: Extract<EventType, "rate_limit_exceeded" | "server_error">,
  data: Record<string, unknown>,
): Promise<void> {
  try {
    await publishEvent(deps, { keyId: "system", admin: true, accountId }, { type, data });
  } catch (error) {
    deps.log.warn({ err: error, accountId, type }, "could not emit a system event");
  }
}
