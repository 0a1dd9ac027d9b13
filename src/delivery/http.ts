import { Agent, errors as undiciErrors, request, type Dispatcher } from "undici";
import { createDeadlines } from "../lib/deadline.ts";
import { formatDuration } from "../lib/duration.ts";

/** At most this much of a receiver's answer is read and kept in the delivery log. */
export const MAX_LOGGED_BODY_BYTES = 4096;

export interface AttemptResult {
  succeeded: boolean;
  /** null when no response arrived (timeout, refused, blocked). */
  responseStatus: number | null;
  responseBody: string | null;
  error: string | null;
  durationMs: number;
}

export interface Sender {
  send(url: string, headers: Record<string, string>, body: string): Promise<AttemptResult>;
  close(): Promise<void>;
}

export interface SenderOptions {
  timeoutMs: number;
  /** Connections per origin (undici keeps one keep-alive pool per origin). */
  connectionsPerOrigin?: number;
  /** Resolves host names at connect time; the SSRF guard fails the connection for non-public addresses. */
  lookup?: (hostname: string, options: { all?: boolean }, callback: (...args: any[]) => void) => void;
}

async function readLimited(body: Dispatcher.ResponseData["body"]): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    chunks.push(buffer);
    size += buffer.length;
    if (size >= MAX_LOGGED_BODY_BYTES) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, MAX_LOGGED_BODY_BYTES).toString("utf8");
}

function describeError(error: unknown, timeoutMs: number): string {
  const err = error as { code?: string; name?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = err.code ?? err.cause?.code;
  if (
    err.name === "TimeoutError" ||
    error instanceof undiciErrors.HeadersTimeoutError ||
    error instanceof undiciErrors.BodyTimeoutError ||
    error instanceof undiciErrors.ConnectTimeoutError ||
    code === "UND_ERR_CONNECT_TIMEOUT"
  ) {
    return `timed out after ${formatDuration(timeoutMs)}`;
  }
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return "connection reset";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "host name could not be resolved";
    case "ERR_WEBHOOK_ADDRESS_BLOCKED":
      return err.message ?? "destination address blocked";
    default:
      return (err.message ?? String(error)).slice(0, 500);
  }
}

/**
 * POSTs webhook requests with undici: keep-alive pools per origin, one deadline for connect +
 * headers + body, redirects never followed, at most 4 KiB of the answer read.
 */
export function createSender(options: SenderOptions): Sender {
  const { timeoutMs } = options;
  const dispatcher = new Agent({
      connections: options.connectionsPerOrigin ?? 64,
      connect: { timeout: timeoutMs, ...(options.lookup ? { lookup: options.lookup as never } : {}) },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      keepAliveTimeout: 4_000,
    });
  const deadline = createDeadlines();

  return {
    async send(url, headers, body) {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      try {
        const response = await request(url, {
          method: "POST",
          headers,
          body,
          dispatcher,
          signal: deadline(timeoutMs),
        });
        const responseBody = await readLimited(response.body);
        const status = response.statusCode;
        const succeeded = status >= 200 && status < 300;
        let error: string | null = null;
        if (status >= 300 && status < 400) {
          const location = response.headers.location;
          error = `redirect${location ? ` to ${String(location).slice(0, 200)}` : ""} not followed`;
        } else if (!succeeded) {
          error = `HTTP ${status}`;
        }
        return { succeeded, responseStatus: status, responseBody, error, durationMs: elapsed() };
      } catch (caught) {
        return {
          succeeded: false,
          responseStatus: null,
          responseBody: null,
          error: describeError(caught, timeoutMs),
          durationMs: elapsed(),
        };
      }
    },
    async close() {
      await dispatcher.close();
    },
  };
}
