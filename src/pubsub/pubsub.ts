import { PubSub as InProcessPubSub, type PubSubEngine } from "graphql-subscriptions";
import { RedisPubSub } from "graphql-redis-subscriptions";
import { Redis } from "ioredis";

/**
 * Live fan-out of small JSON messages. At most once: a subscriber that is not connected misses
 * messages; the database stays the record.
 */
export interface PubSub {
  publish(topic: string, message: unknown): Promise<void>;
  /** Messages published on `topic` from now on; `return()` unsubscribes. */
  subscribe<T>(topic: string): AsyncIterableIterator<T>;
  close(): Promise<void>;
}

function wrap(engine: PubSubEngine, close: () => Promise<void>, prefix = ""): PubSub {
  return {
    publish: (topic, message) => engine.publish(prefix + topic, message),
    subscribe: <T>(topic: string) => engine.asyncIterableIterator<T>(prefix + topic) as AsyncIterableIterator<T>,
    close,
  };
}

/** Events stay inside this process: the embedded default. */
export function createInProcessPubSub(): PubSub {
  return wrap(new InProcessPubSub(), async () => {});
}

/**
 * Redis pub/sub through graphql-redis-subscriptions, with its own two ioredis connections (a
 * subscribing connection can do nothing else), so every API process sees every event.
 */
export function createRedisPubSub(redisUrl: string, prefix: string): PubSub {
  const publisher = new Redis(redisUrl, { maxRetriesPerRequest: null, enableAutoPipelining: true });
  const subscriber = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const engine = new RedisPubSub({ publisher, subscriber });
  return wrap(
    engine,
    async () => {
      await engine.close();
    },
    `${prefix}.`,
  );
}

export const topics = {
  events: (accountId: string) => `events.${accountId}`,
  deliveries: (accountId: string) => `deliveries.${accountId}`,
  /** `{ keyId }` of every API key revoked: every API process forgets it and closes its WebSockets. */
  keysRevoked: () => "keys.revoked",
};

export interface KeyRevokedMessage {
  keyId: string;
}
