import { Worker } from "node:worker_threads";

type WorkerMessage = { type: "ready"; port: number } | { type: "error"; message: string } | { type: "stopped" };

/**
 * Opens (or creates) the PGlite database in `dataDir` and serves it over the PostgreSQL wire
 * protocol on 127.0.0.1 (a free port), from a worker thread so the database's work runs beside
 * the service's event loop, not on it.
 *
 * PGlite is one session: clients must use a pool of size 1 (the server queues what arrives).
 * `stop()` closes the server, then the database, then the thread.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
): Promise<{ connectionString: string; stop(): Promise<void> }> {
  const worker = new Worker(new URL("./embedded-worker.mjs", import.meta.url), {
    workerData: { dataDir },
    execArgv: [],
  });
  const next = () =>
    new Promise<WorkerMessage>((resolve, reject) => {
      const onExit = (code: number) => reject(new Error(`the embedded database thread exited (code ${code})`));
      worker.once("exit", onExit);
      worker.once("error", reject);
      worker.once("message", (message: WorkerMessage) => {
        worker.off("exit", onExit);
        worker.off("error", reject);
        resolve(message);
      });
    });

  const first = await next();
  if (first.type !== "ready") {
    await worker.terminate();
    throw new Error(`the embedded database in ${dataDir} did not open: ${first.type === "error" ? first.message : first.type}`);
  }
  let stopped: Promise<void> | undefined;
  return {
    connectionString: `postgresql://postgres:postgres@127.0.0.1:${first.port}/postgres`,
    stop() {
      stopped ??= (async () => {
        const done = next();
        worker.postMessage("stop");
        await done.catch(() => undefined);
        await worker.terminate();
      })();
      return stopped;
    },
  };
}
