import { badInput } from "../lib/errors.ts";
import { EVENT_CATALOG, EVENT_TYPES, isEventType, type EventType } from "./catalog.ts";

/** `data` is a JSON object of at most 256 KiB (CONTRACT §5). */
export const MAX_EVENT_DATA_BYTES = 256 * 1024;
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

export function validateEventType(input: unknown): EventType {
  if (!isEventType(input)) {
    throw badInput(`unknown event type ${JSON.stringify(input)}; known types: ${EVENT_TYPES.join(", ")}`, "type");
  }
  return input;
}

/**
 * Checks `data` against the catalog: an object, within the size limit, with the required fields.
 * Returns it with its JSON text (measured here, stored as is).
 */
export function validateEventData(type: EventType, data: unknown): { data: Record<string, unknown>; json: string } {
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw badInput("data must be a JSON object", "data");
  }
  const json = JSON.stringify(data);
  const size = Buffer.byteLength(json, "utf8");
  if (size > MAX_EVENT_DATA_BYTES) {
    throw badInput(`data is ${size} bytes; at most ${MAX_EVENT_DATA_BYTES} are allowed`, "data");
  }
  const record = data as Record<string, unknown>;
  const missing = EVENT_CATALOG[type].required.filter((field) => record[field] === undefined || record[field] === null);
  if (missing.length > 0) {
    throw badInput(`data of ${type} must contain ${missing.join(", ")}`, "data");
  }
  return { data: record, json };
}

export function validateIdempotencyKey(input: unknown): string | null {
  if (input === null || input === undefined) return null;
  if (typeof input !== "string" || input.length === 0 || input.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw badInput(`idempotencyKey must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`, "idempotencyKey");
  }
  return input;
}
