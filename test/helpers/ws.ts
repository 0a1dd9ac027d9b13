import { createClient, type Client, type FormattedExecutionResult } from "graphql-ws";
import WebSocket from "ws";

/** How the server ended a WebSocket. */
export interface Closed {
  code: number;
  reason: string;
}

/** What one operation over graphql-ws came back with. */
export interface WsOutcome<T = any> {
  /** Every `next` message, in order. */
  results: FormattedExecutionResult<T, unknown>[];
  /** The `error` message's errors (validation and similar failures). */
  errors?: ReadonlyArray<{ message: string; extensions?: Record<string, unknown> }>;
  /** Set when the socket closed instead of the operation completing. */
  closed?: Closed;
}

export interface WsClient {
  client: Client;
  /** Every close of the underlying socket so far (a lazy client closes after its last operation). */
  closes: Closed[];
  /** How many times the socket was acknowledged (`connection_ack`). */
  connects: number;
  /** Runs one operation to its end: completion, an error message or the socket closing. */
  run<T = any>(query: string, variables?: Record<string, unknown>): Promise<WsOutcome<T>>;
  dispose(): Promise<void>;
}

function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  return typeof value === "object" && value !== null && "code" in value && typeof value.code === "number";
}

/**
 * A graphql-ws client over the `ws` package that never retries, so a refused connection shows up
 * as a close code instead of a reconnect loop.
 */
export function connectWs(
  url: string,
  connectionParams?: Record<string, unknown>,
  options: { lazy?: boolean } = {},
): WsClient {
  const closes: Closed[] = [];
  const state = { connects: 0 };
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    lazy: options.lazy ?? true,
    retryAttempts: 0,
    ...(connectionParams ? { connectionParams } : {}),
    onNonLazyError: () => {},
    on: {
      connected: () => {
        state.connects += 1;
      },
      closed: (event) => {
        if (isCloseEvent(event)) closes.push({ code: event.code, reason: event.reason });
      },
    },
  });
  return {
    client,
    closes,
    get connects() {
      return state.connects;
    },
    run<T>(query: string, variables?: Record<string, unknown>) {
      return new Promise<WsOutcome<T>>((resolve) => {
        const outcome: WsOutcome<T> = { results: [] };
        client.subscribe<T>(
          { query, ...(variables ? { variables } : {}) },
          {
            next: (result) => void outcome.results.push(result),
            error: (error) => {
              if (isCloseEvent(error)) outcome.closed = { code: error.code, reason: error.reason };
              else if (Array.isArray(error)) outcome.errors = error;
              else outcome.errors = [{ message: String((error as Error)?.message ?? error) }];
              resolve(outcome);
            },
            complete: () => resolve(outcome),
          },
        );
      });
    },
    dispose: () => Promise.resolve(client.dispose()),
  };
}

/**
 * Opens a socket with the given `connection_init` payload and reports whether the server
 * acknowledged it or closed it (and with which code). The socket is closed afterwards.
 */
export function connectionOutcome(
  url: string,
  connectionParams?: Record<string, unknown>,
): Promise<{ connected: true } | ({ connected: false } & Closed)> {
  return new Promise((resolve) => {
    let client: Client | undefined = undefined;
    let settled = false;
    const settle = (value: { connected: true } | ({ connected: false } & Closed)) => {
      if (settled) return;
      settled = true;
      resolve(value);
      void Promise.resolve().then(() => client?.dispose());
    };
    client = createClient({
      url,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      ...(connectionParams ? { connectionParams } : {}),
      onNonLazyError: () => {},
      on: {
        connected: () => settle({ connected: true }),
        closed: (event) => {
          if (isCloseEvent(event)) settle({ connected: false, code: event.code, reason: event.reason });
          else settle({ connected: false, code: -1, reason: String(event) });
        },
      },
    });
  });
}
