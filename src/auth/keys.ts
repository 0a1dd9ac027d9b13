import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/** Account keys start `sk_`, admin keys `sk_admin_`; the rest is 32 random bytes, base64url. */
export function generateApiKey(kind: "account" | "admin" = "account"): string {
  return `${kind === "admin" ? "sk_admin_" : "sk_"}${randomBytes(32).toString("base64url")}`;
}

/** SHA-256 of the key, hex: the only form a key is stored in. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** The part of a key that is safe to show back (`sk_AbCd…`). */
export function keyPrefix(key: string): string {
  return key.slice(0, key.startsWith("sk_admin_") ? 13 : 7);
}

/** Constant-time string comparison. */
export function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** `Bearer <key>` → key; anything else → undefined. */
export function bearerToken(header: string | null | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
