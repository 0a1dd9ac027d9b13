import { defineConfig } from "prisma/config";

// Only `prisma generate` uses the CLI; migrations go through src/db/migrator.ts (WebAssembly engine).
export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
});
