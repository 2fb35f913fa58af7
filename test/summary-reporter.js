/**
 * Prints one plain closing line after Jest's own summary, so CI and humans read the outcome from a
 * single line: `jest: N passed, M failed, K skipped`. The skipped count is always there, 0 included:
 * a suite that cannot run here (the MongoDB contract suite without a server) is skipped, never passed,
 * and this line says how many tests that was. `.ci/run` greps `^jest: [0-9]+ passed, [0-9]+ failed`.
 */
class SummaryReporter {
  onRunComplete(_contexts, results) {
    process.stdout.write(`\n${summaryLine(results)}\n`);
  }
}

/** The closing line for Jest's aggregated results. */
function summaryLine(results) {
  const skipped = results.numPendingTests + results.numTodoTests;
  // A suite that failed to run (a syntax error, a throwing import) has no failed test of its own.
  const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
  return `jest: ${results.numPassedTests} passed, ${failed} failed, ${skipped} skipped`;
}

module.exports = SummaryReporter;
module.exports.summaryLine = summaryLine;
