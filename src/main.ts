import "dotenv/config";
import { createApp } from "./app.ts";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { buildServer } from "./http/server.ts";
import { createLogger } from "./lib/logger.ts";

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`spawn-webhooks: ${error.message}`);
    process.exit(1);
  }
  throw error;
}

const log = createLogger(config.LOG_LEVEL, process.stdout, { secrets: [config.ADMIN_API_KEY] });
const handle = await createApp(config, log).catch((error: unknown) => {
  log.fatal({ err: error }, "could not start");
  process.exit(1);
});

if (handle.generatedAdminKey) {
  process.stdout.write(
    `\nAdmin API key (generated now, shown only this once; store it, or set ADMIN_API_KEY):\n  ${handle.generatedAdminKey}\n\n`,
  );
}

if (config.ROLE !== "all" && !config.REDIS_URL) {
  log.warn(
    { role: config.ROLE },
    "ROLE is not 'all' but REDIS_URL is unset: the in-process queue is not shared, so deliveries need ROLE=all",
  );
}
const server = buildServer(handle.app, { api: config.ROLE !== "worker" });
await handle.start();
const { url } = await server.start(config.PORT, config.HOST);
log.info({ role: config.ROLE, url }, "listening");
process.stdout.write(`Spawn Webhooks (${config.ROLE}) listening on ${url}\n`);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "shutting down");
  try {
    await server.stop();
    await handle.close();
    process.exit(0);
  } catch (error) {
    log.error({ err: error }, "unclean shutdown");
    process.exit(1);
  }
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
