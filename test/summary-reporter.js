/**
 * Prints one plain closing line, `jest: N passed, N failed` (plus skipped when any), after Jest's own
 * summary, so CI and humans read the outcome from a single line.
 */
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const line = `jest: ${results.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`;
    process.stdout.write(`\n${line}\n`);
  }
}

module.exports = SummaryReporter;
