// The embedded PostgreSQL (PGlite) in a worker thread: its WebAssembly runs on a core of its own
// instead of blocking the service's event loop. Plain JavaScript, so it loads without a TypeScript
// loader in any host (tsx, vitest). Protocol: workerData { dataDir } → { type: "ready", port } |
// { type: "error", message }; message "stop" → { type: "stopped" }.
import { mkdir } from "node:fs/promises";
import { parentPort, workerData } from "node:worker_threads";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

let db;
let server;
try {
  await mkdir(workerData.dataDir, { recursive: true });
  db = await PGlite.create(workerData.dataDir);
  // The app uses ONE connection at a time, but a connection closed after an error overlaps for a
  // moment with its replacement: with maxConnections 1 the server would refuse the replacement.
  server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 8 });
  await server.start();
  parentPort.postMessage({ type: "ready", port: Number(server.getServerConn().split(":").pop()) });
} catch (error) {
  await db?.close().catch(() => {});
  parentPort.postMessage({ type: "error", message: error instanceof Error ? error.message : String(error) });
}

parentPort.on("message", async (message) => {
  if (message !== "stop") return;
  try {
    await server?.stop();
    await db?.close();
  } finally {
    parentPort.postMessage({ type: "stopped" });
  }
});
