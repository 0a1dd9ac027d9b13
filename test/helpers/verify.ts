import crypto from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { Webhook } from "standardwebhooks";
import type { ReceivedRequest } from "./receiver.ts";

/**
 * Receiver-side verification, written the way a user of the service writes it: once with the
 * Node.js snippet of the Spawn documentation, once with the Standard Webhooks library.
 */

/** A request as an Express handler sees it after `express.json()`: headers, and the parsed body. */
interface ParsedRequest {
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** The documentation's Node.js example, verbatim (docs §5 "Verifying Webhooks"). */
function verifySignature(req: ParsedRequest, secret: string): boolean {
  const signature = req.headers["spawn-signature"];
  const payload = JSON.stringify(req.body);
  const expectedSignature = crypto.createHmac("sha256", secret).update(payload).digest("hex");

  return signature === `sha256=${expectedSignature}`;
}

/**
 * (a) What a receiver following the documentation does: a JSON body parser turns the raw body
 * into `req.body`, then the documented `verifySignature(req, secret)` runs. False for a body that
 * is not JSON (the body parser would have answered 400).
 */
export function verifyLikeDocs(request: Pick<ReceivedRequest, "headers" | "body">, secret: string): boolean {
  let body: unknown;
  try {
    body = JSON.parse(request.body);
  } catch {
    return false;
  }
  return verifySignature({ headers: request.headers, body }, secret);
}

/** The headers as the Standard Webhooks library takes them (plain strings). */
function plainHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/**
 * (b) The `standardwebhooks` package: `new Webhook(secret).verify(rawBody, headers)`. The package
 * takes the `whsec_…` secret as the service returns it (it strips the prefix and base64-decodes the
 * rest). Returns the verification error's message, or undefined when the request verifies.
 */
export function standardWebhooksError(request: Pick<ReceivedRequest, "headers" | "body">, secret: string): string | undefined {
  try {
    new Webhook(secret).verify(request.body, plainHeaders(request.headers));
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

export function verifyStandardWebhooks(request: Pick<ReceivedRequest, "headers" | "body">, secret: string): boolean {
  return standardWebhooksError(request, secret) === undefined;
}

/** Both checks at once, as a receiver that runs both would report them. */
export interface Verdict {
  docs: boolean;
  standard: boolean;
}

export function verifyBoth(request: Pick<ReceivedRequest, "headers" | "body">, secret: string): Verdict {
  return { docs: verifyLikeDocs(request, secret), standard: verifyStandardWebhooks(request, secret) };
}

/** The `v1,…` entries of `webhook-signature`. */
export function standardSignatures(headers: IncomingHttpHeaders): string[] {
  const value = headers["webhook-signature"];
  const text = Array.isArray(value) ? value.join(" ") : (value ?? "");
  return text.split(" ").filter((part) => part !== "");
}

/** A Standard Webhooks secret nobody registered: `whsec_` + base64 of 32 random bytes. */
export function randomSecret(): string {
  return `whsec_${crypto.randomBytes(32).toString("base64")}`;
}

/** The same request with its body changed in one place (still valid JSON, so parsers accept it). */
export function tampered(request: ReceivedRequest): ReceivedRequest {
  const body = JSON.parse(request.body) as { data: Record<string, unknown> };
  body.data = { ...body.data, tampered: true };
  return { ...request, body: JSON.stringify(body) };
}

/**
 * Polls `check` until it returns something other than undefined/false, or fails after `timeoutMs`
 * with `describe()` (what was last seen) in the message. The wait is on a condition, not a sleep.
 */
export async function until<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: { timeoutMs?: number; intervalMs?: number; what?: string; describe?: () => unknown } = {},
): Promise<T> {
  const { timeoutMs = 15_000, intervalMs = 25 } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      const seen = options.describe ? ` (last seen: ${JSON.stringify(options.describe())})` : "";
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${options.what ?? "a condition"}${seen}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Polls `read` until `done` holds for its value; fails with the last value after `timeoutMs`. */
export async function untilValue<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 15_000,
  everyMs = 50,
): Promise<T> {
  let last: T | undefined;
  const found = await until(
    async () => {
      last = await read();
      return done(last) ? { value: last } : undefined;
    },
    { timeoutMs, intervalMs: everyMs, what: "the condition", describe: () => last },
  );
  return found.value;
}

/** The requests a receiver got for one event (`webhook-id` = the event id). */
export function requestsFor(requests: readonly ReceivedRequest[], eventId: string): ReceivedRequest[] {
  return requests.filter((request) => request.headers["webhook-id"] === eventId);
}

/**
 * Waits until at least `count` requests for the event have arrived; resolves with them. `source`
 * is the receiver's live `requests` array, or a function returning the requests to look at.
 */
export function waitForRequests(
  source: readonly ReceivedRequest[] | (() => readonly ReceivedRequest[]),
  eventId: string,
  count = 1,
  timeoutMs = 15_000,
): Promise<ReceivedRequest[]> {
  const current = () => requestsFor(typeof source === "function" ? source() : source, eventId);
  return until(
    () => {
      const found = current();
      return found.length >= count ? found : undefined;
    },
    { timeoutMs, what: `${count} request(s) for ${eventId}`, describe: () => current().length },
  );
}
