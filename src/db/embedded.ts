import { mkdir } from "node:fs/promises";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/**
 * Opens (or creates) the PGlite database in `dataDir` and serves it over the PostgreSQL wire
 * protocol on 127.0.0.1, on a free port picked by the OS.
 *
 * PGlite is one session: clients must use a pool of size 1 (the server queues what arrives).
 * `stop()` closes the server, then the database.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
): Promise<{ connectionString: string; stop(): Promise<void> }> {
  await mkdir(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
  // The app uses ONE connection at a time, but a connection closed after an error overlaps for a
  // moment with its replacement: with maxConnections 1 the server would refuse the replacement.
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: 0, maxConnections: 8 });
  try {
    await server.start();
  } catch (error) {
    await db.close();
    throw error;
  }
  const port = server.getServerConn().split(":").pop();
  return {
    connectionString: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
