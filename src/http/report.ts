import type { Viewer } from "../auth/viewer.ts";
import type { App } from "../context.ts";
import { emitSystemEvent } from "../events/system.ts";
import { newId } from "../lib/ids.ts";

/** What a client is told about an unexpected failure: nothing but an id to quote. */
export const INTERNAL_ERROR_MESSAGE = "Unexpected error.";

/**
 * An unexpected failure while serving a request: logged in full with an error id, and emitted to
 * the account as a `server_error` event carrying only the id and a generic message.
 */
export function reportUnexpectedError(app: App, viewer: Viewer | undefined, error: unknown, errorId = newId("err")): string {
  app.log.error({ errorId, err: error, accountId: viewer?.accountId }, "unexpected error while serving a request");
  if (viewer?.accountId) {
    void emitSystemEvent(app, viewer.accountId, "server_error", {
      error_id: errorId,
      message: "An internal error occurred while processing a request. Quote error_id when contacting support.",
    });
  }
  return errorId;
}
