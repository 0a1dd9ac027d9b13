import type { RateLimiter } from "./auth/rate-limit.ts";
import type { Authenticator, Viewer } from "./auth/viewer.ts";
import type { Config } from "./config.ts";
import type { Db, Sql } from "./db/client.ts";
import type { Logger } from "./lib/logger.ts";
import type { DestinationGuard } from "./webhooks/validation.ts";
import type { Webhook } from "./generated/prisma/client.ts";
import type { DeliveryQueue } from "./delivery/queue.ts";
import type { PubSub } from "./pubsub/pubsub.ts";

/** What the HTTP and WebSocket layers share for the life of a server: built in main.ts (or a test). */
export interface App {
  config: Config;
  log: Logger;
  db: Db;
  /** The same pool as `db`, for the hot-path statements. */
  sql: Sql;
  auth: Authenticator;
  /** API_RATE_LIMIT per key, GraphQL and REST together. */
  limiter: RateLimiter;
  guard: DestinationGuard;
  pubsub: PubSub;
  /** Where publishEvent and retries put deliveries (the worker consumes it in its own role). */
  queue: DeliveryQueue;
  /** Called after a disabled webhook is set active again. */
  onWebhookReactivated?: (webhook: Webhook) => void | Promise<void>;
}

/** The GraphQL context of one operation, over HTTP or WebSocket alike. */
export interface Context {
  app: App;
  viewer: Viewer;
}
