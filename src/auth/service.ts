import type { App } from "../context.ts";
import type { Db } from "../db/client.ts";
import type { Account, ApiKey } from "../generated/prisma/client.ts";
import { badInput, forbidden, notFound } from "../lib/errors.ts";
import { newId } from "../lib/ids.ts";
import { topics, type KeyRevokedMessage } from "../pubsub/pubsub.ts";
import { generateApiKey, hashApiKey, keyPrefix } from "./keys.ts";
import type { Viewer } from "./viewer.ts";

const MAX_NAME_LENGTH = 200;

function validateName(name: string | null | undefined, field: string): string | null {
  if (name === null || name === undefined) return null;
  const trimmed = name.trim();
  if (trimmed === "") throw badInput(`${field} must not be empty`, field);
  if (trimmed.length > MAX_NAME_LENGTH) throw badInput(`${field} must be at most ${MAX_NAME_LENGTH} characters`, field);
  return trimmed;
}

async function insertKey(db: Db, accountId: string | null, name: string | null, admin = false) {
  const apiKey = generateApiKey(admin ? "admin" : "account");
  const key = await db.apiKey.create({
    data: { id: newId("key"), accountId, admin, name, prefix: keyPrefix(apiKey), hash: hashApiKey(apiKey) },
  });
  return { key, apiKey };
}

/** Admin only (checked by the caller's auth scope): a new account and its first API key. */
export async function createAccount(db: Db, name: string): Promise<{ account: Account; apiKey: string; key: ApiKey }> {
  const accountName = validateName(name, "name");
  if (!accountName) throw badInput("name is required", "name");
  const account = await db.account.create({ data: { id: newId("acc"), name: accountName } });
  const { key, apiKey } = await insertKey(db, account.id, "default");
  return { account, apiKey, key };
}

/**
 * A new key for an account. An account key may only create keys for its own account; the admin
 * key names the account (argument, or the account it acts for).
 */
export async function createApiKey(
  db: Db,
  viewer: Viewer,
  input: { accountId?: string | null; name?: string | null },
): Promise<{ apiKey: string; key: ApiKey }> {
  const name = validateName(input.name, "name");
  let accountId = viewer.accountId;
  if (input.accountId) {
    if (!viewer.admin && input.accountId !== viewer.accountId) throw notFound("account", input.accountId);
    accountId = input.accountId;
  }
  if (!accountId) throw badInput("accountId is required with the admin key", "accountId");
  const account = await db.account.findUnique({ where: { id: accountId }, select: { id: true } });
  if (!account) throw notFound("account", accountId);
  return insertKey(db, account.id, name);
}

/** Revokes a key of the viewer's account (the admin key may revoke any account key). */
export async function revokeApiKey(db: Db, viewer: Viewer, id: string): Promise<ApiKey> {
  const key = await db.apiKey.findFirst({
    where: viewer.admin && !viewer.accountId ? { id } : { id, accountId: viewer.accountId ?? "" },
  });
  if (!key) throw notFound("API key", id);
  if (key.admin && !viewer.admin) throw forbidden("only the admin key may revoke an admin key");
  if (key.revokedAt) return key;
  return db.apiKey.update({ where: { id }, data: { revokedAt: new Date() } });
}

/**
 * After a key is revoked: this process forgets it at once; every other API process hears it over
 * pub/sub (each closes the WebSockets the key opened). If the message is lost, the others' key
 * caches still expire within seconds and their WebSocket servers re-check open connections' keys
 * periodically.
 */
export async function announceRevocation(app: App, keyId: string): Promise<void> {
  app.auth.revoked(keyId);
  const message: KeyRevokedMessage = { keyId };
  await app.pubsub.publish(topics.keysRevoked(), message).catch((error: unknown) => {
    app.log.warn({ err: error, keyId }, "could not announce a key revocation to other processes");
  });
}

/**
 * The admin key on first start: when ADMIN_API_KEY is unset and no admin key is stored, one is
 * generated and returned (to be printed once); only its hash is kept. Safe when several processes
 * start together: an advisory lock lets one of them create it.
 */
export async function ensureAdminKey(db: Db, configured: string | undefined): Promise<string | null> {
  if (configured) return null;
  return db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(727274)`;
    const existing = await tx.apiKey.findFirst({ where: { admin: true, revokedAt: null }, select: { id: true } });
    if (existing) return null;
    const { apiKey } = await insertKey(tx as unknown as Db, null, "admin (generated at first start)", true);
    return apiKey;
  });
}
