import "dotenv/config";
import { startEmbeddedPostgres } from "../src/db/embedded.ts";
import { applyMigrations } from "../src/db/migrator.ts";

const url = process.env.DATABASE_URL || undefined;
const database = url
  ? { connectionString: url, stop: async () => {} }
  : await startEmbeddedPostgres(process.env.DATA_DIR || "./.data");
try {
  const applied = await applyMigrations({ connectionString: database.connectionString });
  console.log(applied.length === 0 ? "no pending migrations" : applied.map((name) => `applied ${name}`).join("\n"));
} catch (error) {
  console.error(`migration failed: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  await database.stop();
}
