import { EVENT_TYPES, isEventType, type EventType } from "../events/catalog.ts";
import { badInput } from "../lib/errors.ts";

export const MAX_URL_LENGTH = 2048;
export const MAX_DESCRIPTION_LENGTH = 500;

/**
 * Decides whether a webhook URL may be called (private networks, DNS). Returns the reason it is
 * refused, or null. The SSRF rules plug in here; registration and every attempt both ask it.
 */
export type DestinationGuard = (url: URL) => Promise<string | null>;

/** Syntax rules of CONTRACT §7: http(s), ≤ 2048 characters, no user info, a host. */
export function parseWebhookUrl(input: string): URL {
  if (typeof input !== "string" || input.trim() === "") throw badInput("url is required", "url");
  if (input.length > MAX_URL_LENGTH) {
    throw badInput(`url must be at most ${MAX_URL_LENGTH} characters`, "url");
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw badInput("url is not a valid absolute URL", "url");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw badInput("url must use http or https", "url");
  }
  if (url.username !== "" || url.password !== "") {
    throw badInput("url must not contain user info", "url");
  }
  if (url.hostname === "") throw badInput("url must have a host", "url");
  if (url.href.length > MAX_URL_LENGTH) {
    throw badInput(`url must be at most ${MAX_URL_LENGTH} characters`, "url");
  }
  return url;
}

/** Syntax rules plus the destination guard; returns the normalised URL. */
export async function validateWebhookUrl(input: string, guard: DestinationGuard): Promise<string> {
  const url = parseWebhookUrl(input);
  const refused = await guard(url);
  if (refused) throw badInput(`url is not allowed: ${refused}`, "url");
  return url.href;
}

/** At least one event, every one known; duplicates dropped, catalog order kept. */
export function validateEvents(input: unknown): EventType[] {
  if (!Array.isArray(input) || input.length === 0) {
    throw badInput("events must list at least one event type", "events");
  }
  const unknown = input.filter((e) => !isEventType(e));
  if (unknown.length > 0) {
    throw badInput(
      `unknown event type ${unknown.map((e) => JSON.stringify(e)).join(", ")}; known types: ${EVENT_TYPES.join(", ")}`,
      "events",
    );
  }
  const wanted = new Set(input as EventType[]);
  return EVENT_TYPES.filter((t) => wanted.has(t));
}

export function validateDescription(input: unknown): string | null {
  if (input === null || input === undefined) return null;
  if (typeof input !== "string") throw badInput("description must be a string", "description");
  if ([...input].length > MAX_DESCRIPTION_LENGTH) {
    throw badInput(`description must be at most ${MAX_DESCRIPTION_LENGTH} characters`, "description");
  }
  return input;
}
