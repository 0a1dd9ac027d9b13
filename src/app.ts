import { ensureAdminKey } from "./auth/service.ts";
import { createAuthenticator } from "./auth/viewer.ts";
import type { Config } from "./config.ts";
import type { App } from "./context.ts";
import { createPrismaClient } from "./db/client.ts";
import { startEmbeddedPostgres } from "./db/embedded.ts";
import { applyMigrations } from "./db/migrator.ts";
import type { Logger } from "./lib/logger.ts";
import { allowAllDestinations } from "./webhooks/validation.ts";

export interface AppHandle {
  app: App;
  /** The generated admin key when this start created it (print it once), else null. */
  generatedAdminKey: string | null;
  /** The database the app uses (the embedded server's URL when DATABASE_URL is unset). */
  databaseUrl: string;
  close(): Promise<void>;
}

/**
 * Opens the database (embedded PGlite when DATABASE_URL is unset), applies pending migrations,
 * and wires the services every role shares.
 */
export async function createApp(config: Config, log: Logger): Promise<AppHandle> {
  const embedded = config.DATABASE_URL ? undefined : await startEmbeddedPostgres(config.DATA_DIR);
  const databaseUrl = config.DATABASE_URL ?? embedded!.connectionString;
  try {
    const applied = await applyMigrations({ connectionString: databaseUrl, log: (msg) => log.debug(msg) });
    for (const name of applied) log.info({ migration: name }, "applied migration");
    const db = createPrismaClient(databaseUrl, { max: embedded ? 1 : 10 });
    const generatedAdminKey = await ensureAdminKey(db, config.ADMIN_API_KEY);
    const app: App = {
      config,
      log,
      db,
      auth: createAuthenticator({ db, adminApiKey: config.ADMIN_API_KEY }),
      guard: allowAllDestinations,
    };
    return {
      app,
      generatedAdminKey,
      databaseUrl,
      async close() {
        await db.$disconnect();
        await embedded?.stop();
      },
    };
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
}
