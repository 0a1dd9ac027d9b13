import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { printedSchema } from "../src/schema/index.ts";

// Writes schema.graphql from the Pothos schema; a test fails when the two differ.
const target = fileURLToPath(new URL("../schema.graphql", import.meta.url));
writeFileSync(target, printedSchema());
console.log(`wrote ${target.split("/").pop()}`);
