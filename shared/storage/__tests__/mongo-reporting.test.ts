/**
 * Honest reporting of the MongoDB suite: without a server its tests are in jest's skipped count, never
 * passed, and the closing line says `N passed, M failed, K skipped` in the form `.ci/run` greps.
 * Runs mongo.test.ts in a child jest with no MONGO_URL and no mongod reachable (~5 s: jest's start plus
 * the unreachable-server test's 3 s selection timeout).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

const { summaryLine } = require("../../../test/summary-reporter.js") as { summaryLine(results: Record<string, number>): string };

const CI_GREP = /^jest: [0-9]+ passed, [0-9]+ failed/;
const root = resolve(__dirname, "../../..");

describe("test reporting", () => {
  it("the closing line always names the skipped count, in the form CI greps", () => {
    const counts = { numPassedTests: 12, numFailedTests: 1, numRuntimeErrorTestSuites: 1, numPendingTests: 3, numTodoTests: 1 };
    expect(summaryLine(counts)).toBe("jest: 12 passed, 2 failed, 4 skipped");
    const clean = summaryLine({ numPassedTests: 5, numFailedTests: 0, numRuntimeErrorTestSuites: 0, numPendingTests: 0, numTodoTests: 0 });
    expect(clean).toBe("jest: 5 passed, 0 failed, 0 skipped");
    expect(clean).toMatch(CI_GREP);
  });

  it("without a MongoDB server, the MongoDB contract suite is skipped, not passed", () => {
    const out = mkdtempSync(join(tmpdir(), "crm-mongo-report-"));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, PATH: dirname(process.execPath), CI: "true" };
      delete env.MONGO_URL;
      delete env.MONGOMS_SYSTEM_BINARY;
      const jestBin = require.resolve("jest/bin/jest");
      const run = spawnSync(process.execPath, [jestBin, "--runInBand", "--json", `--outputFile=${join(out, "results.json")}`, "shared/storage/__tests__/mongo.test.ts"], {
        cwd: root,
        env,
        encoding: "utf8",
        timeout: 120_000,
      });
      expect(run.status).toBe(0);
      const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as {
        numPassedTests: number;
        numPendingTests: number;
        testResults: { assertionResults: { fullName: string; status: string }[] }[];
      };
      const tests = results.testResults.flatMap((r) => r.assertionResults);
      const contract = tests.filter((t) => t.fullName.startsWith("mongodb server"));
      expect(contract.length).toBeGreaterThan(20);
      expect(new Set(contract.map((t) => t.status))).toEqual(new Set(["pending"]));
      expect(results.numPendingTests).toBe(contract.length);
      // What passes is only what needs no server.
      expect(tests.filter((t) => t.status === "passed").every((t) => t.fullName.startsWith("mongodb adapter without a server"))).toBe(true);
      const closing = run.stdout
        .trim()
        .split("\n")
        .filter((line) => CI_GREP.test(line));
      expect(closing).toEqual([`jest: ${results.numPassedTests} passed, 0 failed, ${contract.length} skipped`]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 130_000);
});
