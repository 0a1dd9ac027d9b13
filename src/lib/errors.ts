import { GraphQLError } from "graphql";

/** The error codes of CONTRACT §3, with the HTTP status the REST API answers for each. */
export const ERROR_STATUS = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  BAD_USER_INPUT: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  INTERNAL_SERVER_ERROR: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** An expected failure: shown to the client as is, with `extensions.code`. */
export function appError(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...extensions } });
}

export const notFound = (what: string, id: string) => appError("NOT_FOUND", `${what} ${id} not found`);

export const badInput = (message: string, field?: string) =>
  appError("BAD_USER_INPUT", message, field ? { field } : {});

export const forbidden = (message: string) => appError("FORBIDDEN", message);

export function unauthenticated(reason: "missing" | "invalid"): GraphQLError {
  return new GraphQLError(reason === "missing" ? "Missing API key" : "Invalid API key", {
    extensions: { code: "UNAUTHENTICATED", http: { status: 401 } },
  });
}

/** The code of an expected error (one of ours, whichever copy of graphql made it), or undefined. */
export function errorCode(error: unknown): ErrorCode | undefined {
  const code = (error as { extensions?: { code?: unknown } } | null)?.extensions?.code;
  return typeof code === "string" && code in ERROR_STATUS ? (code as ErrorCode) : undefined;
}
