import { pino, type Logger } from "pino";

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

/** The process logger: JSON lines on stdout, secrets redacted. */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, redact: { paths: REDACT, censor: "[redacted]" }, base: { pid: process.pid } },
    destination ?? process.stdout,
  );
}
