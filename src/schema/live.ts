import type { Context } from "../context.ts";
import { appError } from "../lib/errors.ts";

/**
 * The messages published on `topic` from now on, for one subscription of `ctx.viewer`. When the
 * viewer's key is revoked the stream ends with UNAUTHENTICATED: over Server-Sent Events that ends
 * the response; over WebSocket the server also closes the connection with 4403. While it runs,
 * the key is watched (re-checked periodically, in case the revocation's announcement is lost).
 */
export async function* liveTopic<T>(ctx: Context, topic: string): AsyncGenerator<T, void, undefined> {
  const iterator = ctx.app.pubsub.subscribe<T>(topic);
  const unwatch = ctx.app.auth.watch(ctx.viewer.keyId);
  let revoked = false;
  const stopListening = ctx.app.auth.onRevoked((keyId) => {
    if (keyId !== ctx.viewer.keyId || revoked) return;
    revoked = true;
    void iterator.return?.(); // ends a pending next() with done
  });
  try {
    const refuse = () => appError("UNAUTHENTICATED", "API key revoked", { http: { status: 401 } });
    for (;;) {
      // revoked while paused at `yield`: the in-process iterator answers no next() after return()
      if (revoked) throw refuse();
      const next = await iterator.next();
      if (revoked) throw refuse();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    stopListening();
    unwatch();
    if (!revoked) await iterator.return?.();
  }
}
