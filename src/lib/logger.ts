import { pino, stdSerializers, type Logger } from "pino";

export type { Logger };

/** Paths that may hold a secret or an API key; pino replaces them with "[redacted]". */
const REDACT = [
  "secret",
  "*.secret",
  "previousSecret",
  "*.previousSecret",
  "apiKey",
  "*.apiKey",
  "authorization",
  "*.authorization",
  "req.headers.authorization",
  "headers.authorization",
  "connectionParams.authorization",
];

/** Webhook secrets and API keys, wherever they appear in text (an ORM error can quote arguments). */
const SECRET_PATTERN = /whsec_[A-Za-z0-9+/=]+|sk_(?:admin_)?[A-Za-z0-9_-]{16,}/g;

function scrubber(extra: readonly string[]) {
  const literals = extra.filter((s) => s.length >= 8);
  return (text: string): string => {
    let out = text.replace(SECRET_PATTERN, "[redacted]");
    for (const literal of literals) out = out.split(literal).join("[redacted]");
    return out;
  };
}

/**
 * The process logger: JSON lines, secrets redacted by path, and scrubbed from error messages and
 * stacks by pattern (plus any configured literal such as ADMIN_API_KEY).
 */
export function createLogger(
  level: string,
  destination?: NodeJS.WritableStream,
  options: { secrets?: readonly (string | undefined)[] } = {},
): Logger {
  const scrub = scrubber((options.secrets ?? []).filter((s): s is string => typeof s === "string"));
  const err = (error: unknown) => {
    const serialized = stdSerializers.err(error as Error) as unknown as Record<string, unknown>;
    return JSON.parse(scrub(JSON.stringify(serialized))) as Record<string, unknown>;
  };
  return pino(
    {
      level,
      redact: { paths: REDACT, censor: "[redacted]" },
      base: { pid: process.pid },
      serializers: { err, error: err },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((arg) => (typeof arg === "string" ? scrub(arg) : arg)) as Parameters<typeof method>);
        },
      },
    },
    destination ?? process.stdout,
  );
}
