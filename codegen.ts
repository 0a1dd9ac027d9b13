import type { CodegenConfig } from "@graphql-codegen/cli";

/**
 * `npm run codegen`: scripts/print-schema.ts writes schema.graphql from the Pothos schema, then
 * this generates typed documents for the operations the tests write with `graphql(…)`.
 */
const config: CodegenConfig = {
  schema: "schema.graphql",
  documents: ["test/**/*.ts", "!test/generated/**"],
  ignoreNoDocuments: true,
  emitLegacyCommonJSImports: false,
  generates: {
    "test/generated/": {
      preset: "client",
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: { DateTime: "string", JSON: "unknown" },
      },
    },
  },
};

export default config;
