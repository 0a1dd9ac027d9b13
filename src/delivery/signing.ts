import { createHmac } from "node:crypto";

/** The body of every webhook request: exactly these three keys, in this order, no whitespace. */
export function webhookBody(event: { type: string; timestamp: number; data: unknown }): string {
  return JSON.stringify({ event: event.type, timestamp: event.timestamp, data: event.data });
}

/** `spawn-signature`: hex HMAC-SHA256 of the raw body, keyed by the secret string as UTF-8. */
export function spawnSignature(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

/** Decoded Standard Webhooks keys by secret (a worker signs with the same few secrets all day). */
const standardKeys = new Map<string, Buffer>();
const MAX_CACHED_KEYS = 10_000;

function standardKey(secret: string): Buffer {
  let key = standardKeys.get(secret);
  if (!key) {
    if (standardKeys.size >= MAX_CACHED_KEYS) standardKeys.clear();
    key = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
    standardKeys.set(secret, key);
  }
  return key;
}

/** One Standard Webhooks signature: base64 HMAC of `id.timestamp.body`, keyed by the secret's bytes. */
export function standardSignature(secret: string, msgId: string, timestamp: number, body: string): string {
  const key = standardKey(secret);
  return `v1,${createHmac("sha256", key).update(`${msgId}.${timestamp}.${body}`, "utf8").digest("base64")}`;
}

export interface SigningSecrets {
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
}

/**
 * The headers of CONTRACT §6. After a rotation, `webhook-signature` carries the new and the old
 * signature (space-separated) until the old secret expires.
 */
export function signatureHeaders(
  secrets: SigningSecrets,
  msgId: string,
  body: string,
  now: Date = new Date(),
): Record<string, string> {
  const timestamp = Math.floor(now.getTime() / 1000);
  const signatures = [standardSignature(secrets.secret, msgId, timestamp, body)];
  if (secrets.previousSecret && secrets.previousSecretExpiresAt && secrets.previousSecretExpiresAt > now) {
    signatures.push(standardSignature(secrets.previousSecret, msgId, timestamp, body));
  }
  return {
    "content-type": "application/json",
    "user-agent": "Spawn-Webhooks/1.0",
    "spawn-signature": spawnSignature(secrets.secret, body),
    "webhook-id": msgId,
    "webhook-timestamp": String(timestamp),
    "webhook-signature": signatures.join(" "),
  };
}
