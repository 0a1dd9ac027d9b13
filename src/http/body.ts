import type { IncomingMessage } from "node:http";
import { appError } from "../lib/errors.ts";

/** Request bodies larger than this get 413 (CONTRACT §7). */
export const MAX_BODY_BYTES = 1024 * 1024;

export const payloadTooLarge = () =>
  appError("PAYLOAD_TOO_LARGE", `request body is larger than ${MAX_BODY_BYTES} bytes (1 MiB)`, {
    http: { status: 413 },
  });

/** Reads the whole body, refusing (413) as soon as it passes the limit, declared or streamed. */
export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw payloadTooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      req.resume();
      throw payloadTooLarge();
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** The media type of a request, lower case, without parameters. */
export function mediaType(req: IncomingMessage): string {
  return (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
}
