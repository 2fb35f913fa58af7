/** Jest runs TypeScript through swc (type checking is `npm run typecheck`, run by `npm test`). */
const swc = ["@swc/jest", { jsc: { target: "es2023" }, module: { type: "commonjs" } }];

/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>"],
  testMatch: ["**/__tests__/**/*.test.ts", "<rootDir>/test/**/*.test.ts"],
  testPathIgnorePatterns: ["/node_modules/", "/dist/"],
  // jose 6 and the OpenAPI validator ship ESM only: let swc turn them into CommonJS for Jest's loader.
  transform: { "^.+\\.(t|j|mj)s$": swc },
  transformIgnorePatterns: ["/node_modules/(?!(jose|@seriousme/openapi-schema-validator)/)"],
  testTimeout: 30000,
  maxWorkers: 2,
  reporters: ["default", "<rootDir>/test/summary-reporter.js"],
};
