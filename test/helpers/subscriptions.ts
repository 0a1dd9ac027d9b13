import { createClient, type Client, type ExecutionResult } from "graphql-ws";
import WebSocket from "ws";

/** One live GraphQL subscription: every payload it streamed so far, and ways to wait for more. */
export interface LiveSubscription<T> {
  /** `data[field]` of every `next` message, in arrival order. */
  readonly items: T[];
  /** Errors the server sent for the operation (an `error` message or errors inside `next`). */
  readonly errors: unknown[];
  /** True once the server completed the operation or the socket closed under it. */
  readonly ended: boolean;
  /** Resolves with the first item (already seen or still to come) that matches; rejects after `timeoutMs`. */
  waitFor(match: (item: T) => boolean, timeoutMs?: number): Promise<T>;
  /** Stops the subscription (the client sends `complete`). */
  stop(): void;
}

export interface SubscriptionClient {
  client: Client;
  /**
   * Starts `query` (a subscription whose root field is `field`). The server may take a moment
   * before it listens: use `untilLive` before relying on it.
   */
  subscribe<T = any>(query: string, variables?: Record<string, unknown>): LiveSubscription<T>;
  dispose(): Promise<void>;
}

/**
 * A graphql-ws client over the `ws` package, authenticated in `connection_init` with
 * `{"authorization": "Bearer <key>"}` as CONTRACT §2 says. It never retries, so a broken server
 * shows up as an ended subscription rather than a silent reconnect.
 */
export function connectSubscriptions(wsUrl: string, apiKey: string): SubscriptionClient {
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${apiKey}` },
    lazy: true,
    retryAttempts: 0,
  });

  return {
    client,
    subscribe<T>(query: string, variables?: Record<string, unknown>): LiveSubscription<T> {
      const items: T[] = [];
      const errors: unknown[] = [];
      const waiters = new Set<() => void>();
      let ended = false;
      const notify = () => {
        for (const waiter of [...waiters]) waiter();
      };
      const unsubscribe = client.subscribe<Record<string, T>>(
        { query, ...(variables ? { variables } : {}) },
        {
          next: (result: ExecutionResult<Record<string, T>>) => {
            if (result.errors) errors.push(...result.errors);
            const data = result.data;
            if (data) for (const value of Object.values(data)) items.push(value);
            notify();
          },
          error: (error) => {
            errors.push(error);
            ended = true;
            notify();
          },
          complete: () => {
            ended = true;
            notify();
          },
        },
      );
      return {
        items,
        errors,
        get ended() {
          return ended;
        },
        waitFor(match, timeoutMs = 15_000) {
          return new Promise<T>((resolve, reject) => {
            const check = () => {
              const found = items.find(match);
              if (found !== undefined) {
                finish();
                resolve(found);
              } else if (ended) {
                finish();
                reject(new Error(`subscription ended (errors: ${JSON.stringify(errors)}) before a matching item`));
              }
            };
            const timer = setTimeout(() => {
              finish();
              reject(
                new Error(
                  `no matching subscription item within ${timeoutMs}ms; got ${JSON.stringify(items).slice(0, 2000)}` +
                    (errors.length ? `; errors ${JSON.stringify(errors)}` : ""),
                ),
              );
            }, timeoutMs);
            const finish = () => {
              clearTimeout(timer);
              waiters.delete(check);
            };
            waiters.add(check);
            check();
          });
        },
        stop() {
          unsubscribe();
        },
      };
    },
    dispose: () => Promise.resolve(client.dispose()),
  };
}

/**
 * Waits until a subscription is really listening on the server: graphql-ws has no "subscribed"
 * acknowledgement, and the server (or Redis) subscribes asynchronously. So `probe()` (something
 * that makes the server stream one item, e.g. publishing an event) is repeated until an item it
 * produced arrives. `probe` returns a matcher for the item it caused.
 */
export async function untilLive<T>(
  subscription: LiveSubscription<T>,
  probe: () => Promise<(item: T) => boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const matchers: Array<(item: T) => boolean> = [];
  for (;;) {
    matchers.push(await probe());
    try {
      // Any probe's item proves the subscription is live, including an earlier probe's.
      await subscription.waitFor((item) => matchers.some((m) => m(item)), 300);
      return;
    } catch (error) {
      if (subscription.ended || Date.now() > deadline) throw error;
    }
  }
}
