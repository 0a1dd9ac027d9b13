/**
 * Everything the harness starts registers how to undo it here; `disposeAll` runs the disposers
 * newest first, each bounded in time, also after a failure or a signal.
 */
type Disposer = { name: string; run: () => Promise<void> | void };

const disposers: Disposer[] = [];
let disposing: Promise<void> | undefined;

export function onCleanup(name: string, run: () => Promise<void> | void): () => void {
  const entry = { name, run };
  disposers.push(entry);
  return () => {
    const i = disposers.indexOf(entry);
    if (i >= 0) disposers.splice(i, 1);
  };
}

/** Runs one disposer now (and forgets it). */
export async function disposeNow(remove: () => void, run: () => Promise<void> | void): Promise<void> {
  remove();
  await run();
}

export function disposeAll(timeoutMs = 20_000): Promise<void> {
  disposing ??= (async () => {
    while (disposers.length > 0) {
      const { name, run } = disposers.pop()!;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(run),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
      } catch (error) {
        process.stderr.write(`[bench] cleanup of ${name} failed: ${(error as Error).message}\n`);
      } finally {
        clearTimeout(timer);
      }
    }
  })();
  return disposing;
}

/** SIGINT/SIGTERM and crashes still clean up before the process exits. */
export function installExitHandlers(): void {
  const bail = (why: string, code: number) => {
    process.stderr.write(`[bench] ${why}: cleaning up\n`);
    void disposeAll().finally(() => process.exit(code));
  };
  process.once("SIGINT", () => bail("SIGINT", 130));
  process.once("SIGTERM", () => bail("SIGTERM", 143));
  process.on("uncaughtException", (error) => {
    process.stderr.write(`[bench] uncaught: ${error.stack ?? error}\n`);
    bail("uncaught exception", 1);
  });
  process.on("unhandledRejection", (error) => {
    process.stderr.write(`[bench] unhandled rejection: ${(error as Error)?.stack ?? error}\n`);
    bail("unhandled rejection", 1);
  });
}
