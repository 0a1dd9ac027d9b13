import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import type { Redis } from "ioredis";
import { formatDuration } from "../lib/duration.ts";
import { appError } from "../lib/errors.ts";
import type { Viewer } from "./viewer.ts";

export interface RateLimitOptions {
  points: number;
  windowMs: number;
  /** Shared across processes when given; in-process otherwise. */
  redis?: Redis;
  prefix: string;
  /** Called when a key is throttled, at most once a minute per key (across processes with Redis). */
  onExceeded?: (viewer: Viewer, limit: { limit: number; window: string }) => void;
}

export interface RateLimiter {
  /** Counts one request of the key; throws RATE_LIMITED (HTTP 429 with Retry-After) past the limit. */
  consume(viewer: Viewer): Promise<void>;
}

function limiter(options: RateLimitOptions, keyPrefix: string, points: number, duration: number): RateLimiterAbstract {
  return options.redis
    ? new RateLimiterRedis({
        storeClient: options.redis,
        keyPrefix: `${options.prefix}:${keyPrefix}`,
        points,
        duration,
        insuranceLimiter: new RateLimiterMemory({ keyPrefix, points, duration }),
      })
    : new RateLimiterMemory({ keyPrefix, points, duration });
}

/** The API rate limit per key (API_RATE_LIMIT), GraphQL and REST together (rate-limiter-flexible). */
export function createRateLimiter(options: RateLimitOptions): RateLimiter {
  const requests = limiter(options, "api", options.points, options.windowMs / 1000);
  const notices = limiter(options, "api-notice", 1, 60);
  const window = formatDuration(options.windowMs);

  async function notify(viewer: Viewer): Promise<void> {
    if (!viewer.accountId || !options.onExceeded) return;
    try {
      await notices.consume(viewer.keyId);
    } catch {
      return; // already told this minute
    }
    options.onExceeded(viewer, { limit: options.points, window });
  }

  return {
    async consume(viewer) {
      try {
        await requests.consume(viewer.keyId);
      } catch (rejection) {
        if (!(rejection instanceof RateLimiterRes)) throw rejection;
        void notify(viewer);
        const retryAfter = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
        throw appError("RATE_LIMITED", `rate limit of ${options.points} requests per ${window} exceeded`, {
          retryAfter,
          http: { status: 429, headers: { "Retry-After": String(retryAfter) } },
        });
      }
    },
  };
}
