import type { Db } from "../db/client.ts";
import { forbidden, notFound, unauthenticated } from "../lib/errors.ts";
import { bearerToken, hashApiKey, safeEqual } from "./keys.ts";

/** Who is calling: an account key, or the admin key (optionally acting for an account). */
export interface Viewer {
  /** The API key's id; `admin:env` for the key from ADMIN_API_KEY. */
  keyId: string;
  admin: boolean;
  /** The account acted for: the key's own account, or the one an admin names. */
  accountId: string | null;
}

/** The key id of the key from ADMIN_API_KEY (not stored, never revoked). */
export const ENV_ADMIN_KEY_ID = "admin:env";

/** Header (HTTP) or `connection_init` field (WebSocket) with which the admin key acts for an account. */
export const ACT_AS_HEADER = "x-account-id";

/**
 * The account the viewer acts for; FORBIDDEN for the admin key when no account is named
 * (account keys always have one).
 */
export function requireAccount(viewer: Viewer): string {
  if (!viewer.accountId) {
    throw forbidden(`the admin key acts for an account only when the ${ACT_AS_HEADER} header names it`);
  }
  return viewer.accountId;
}

const LAST_USED_EVERY_MS = 60_000;
/** A key looked up within this long is not looked up again (a revocation in another process takes up to this long). */
const KEY_CACHE_MS = 5_000;
const KEY_CACHE_MAX = 10_000;

export interface Authenticator {
  /**
   * Resolves `Authorization: Bearer <key>` into a viewer. Throws UNAUTHENTICATED (HTTP 401) for
   * a missing, unknown or revoked key.
   */
  authenticate(authorization: string | null | undefined, actAs?: string | null): Promise<Viewer>;
  /**
   * A key was revoked (here or, through pub/sub, in another process): drops the cached lookups
   * and tells the listeners (the WebSocket server closes the connections the key opened; live
   * subscriptions of the key end).
   */
  revoked(keyId: string): void;
  /** Calls `listener` with the id of every key revoked from now on; returns the unsubscribe. */
  onRevoked(listener: (keyId: string) => void): () => void;
  /**
   * Marks a key as in use by something long-lived (a WebSocket, a subscription): while any is,
   * the key is re-checked in the database every `recheckMs`, and found revoked, `revoked()` runs
   * (a revocation whose announcement was lost). Returns the unwatch.
   */
  watch(keyId: string): () => void;
  /** Stops the re-checks. */
  close(): void;
}

export function createAuthenticator(deps: {
  db: Db;
  adminApiKey?: string | undefined;
  /** How often watched keys are re-checked; default 30 s. */
  recheckMs?: number;
  onError?: (error: unknown, what: string) => void;
}): Authenticator {
  const lastUsedWritten = new Map<string, number>();
  const cache = new Map<string, { row: { id: string; admin: boolean; accountId: string | null } | null; until: number }>();
  const revocationListeners = new Set<(keyId: string) => void>();
  /** Bumped by every revocation: a lookup that started before one does not fill the cache. */
  let generation = 0;
  const watched = new Map<string, number>();
  let recheckTimer: NodeJS.Timeout | undefined;
  const reportError = deps.onError ?? (() => {});

  async function lookup(hash: string) {
    const now = Date.now();
    const cached = cache.get(hash);
    if (cached && cached.until > now) return cached.row;
    const startedIn = generation;
    const found = await deps.db.apiKey.findUnique({
      where: { hash },
      select: { id: true, admin: true, accountId: true, revokedAt: true },
    });
    const row = found && !found.revokedAt ? { id: found.id, admin: found.admin, accountId: found.accountId } : null;
    if (startedIn === generation) {
      if (cache.size >= KEY_CACHE_MAX) cache.clear();
      cache.set(hash, { row, until: now + KEY_CACHE_MS });
    }
    return row;
  }

  function recheck(): void {
    const ids = [...watched.keys()].filter((id) => id !== ENV_ADMIN_KEY_ID);
    if (ids.length === 0) return;
    deps.db.apiKey
      .findMany({ where: { id: { in: ids }, revokedAt: { not: null } }, select: { id: true } })
      .then((keys) => keys.forEach((key) => revoked(key.id)))
      .catch((error: unknown) => reportError(error, "could not re-check the keys in use"));
  }

  function revoked(keyId: string): void {
    generation += 1;
    cache.clear();
    for (const listener of [...revocationListeners]) {
      try {
        listener(keyId);
      } catch (error) {
        reportError(error, "a key revocation listener failed");
      }
    }
  }

  function touch(keyId: string): void {
    const now = Date.now();
    if ((lastUsedWritten.get(keyId) ?? 0) > now - LAST_USED_EVERY_MS) return;
    lastUsedWritten.set(keyId, now);
    deps.db.apiKey.update({ where: { id: keyId }, data: { lastUsedAt: new Date(now) } }).catch(() => {});
  }

  async function actFor(viewer: Viewer, actAs: string | null | undefined): Promise<Viewer> {
    if (!viewer.admin || !actAs) return viewer;
    const account = await deps.db.account.findUnique({ where: { id: actAs }, select: { id: true } });
    if (!account) throw notFound("account", actAs);
    return { ...viewer, accountId: account.id };
  }

  return {
    async authenticate(authorization, actAs) {
      const key = bearerToken(authorization);
      if (!key) throw unauthenticated(authorization ? "invalid" : "missing");
      if (deps.adminApiKey && safeEqual(key, deps.adminApiKey)) {
        return actFor({ keyId: ENV_ADMIN_KEY_ID, admin: true, accountId: null }, actAs);
      }
      const row = await lookup(hashApiKey(key));
      if (!row) throw unauthenticated("invalid");
      touch(row.id);
      return actFor({ keyId: row.id, admin: row.admin, accountId: row.accountId }, actAs);
    },
    revoked,
    onRevoked(listener) {
      revocationListeners.add(listener);
      return () => revocationListeners.delete(listener);
    },
    watch(keyId) {
      watched.set(keyId, (watched.get(keyId) ?? 0) + 1);
      if (!recheckTimer) {
        recheckTimer = setInterval(recheck, deps.recheckMs ?? 30_000);
        recheckTimer.unref();
      }
      let done = false;
      return () => {
        if (done) return;
        done = true;
        const left = watched.get(keyId)! - 1;
        if (left > 0) watched.set(keyId, left);
        else watched.delete(keyId);
        if (watched.size === 0) {
          clearInterval(recheckTimer);
          recheckTimer = undefined;
        }
      };
    },
    close() {
      clearInterval(recheckTimer);
      recheckTimer = undefined;
      watched.clear();
    },
  };
}
