/**
 * Waiting in tests: for a condition, never for a guessed time. `waitFor` polls a probe until it gives a
 * truthy value and resolves with that value; past the deadline it fails with what it was waiting for
 * (and `detail()`, e.g. a process's output). Deadlines are generous on purpose: a condition that holds is
 * met within milliseconds on an idle machine, and the deadline is only reached when it never holds, or
 * on a CI machine whose two cores are shared by many processes.
 */

export interface WaitOptions {
  /** How long to keep polling (default 15 s). */
  timeoutMs?: number;
  /** Pause between two probes (default 20 ms). */
  intervalMs?: number;
  /** More to say when the deadline passes (the last state, a process's output, ...). */
  detail?: () => string;
}

type Truthy<T> = Exclude<T, null | undefined | false | 0 | "">;

/**
 * Resolves with the first truthy value `probe` returns. A probe that throws ends the wait with its error
 * (use that for "this can never happen any more", e.g. a process that exited).
 */
export async function waitFor<T>(probe: () => T | Promise<T>, what: string, options: WaitOptions = {}): Promise<Truthy<T>> {
  const { timeoutMs = 15_000, intervalMs = 20, detail } = options;
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value) return value as Truthy<T>;
    const waited = Date.now() - started;
    if (waited > timeoutMs) {
      const more = detail ? `\n${detail()}` : "";
      throw new Error(`timed out waiting for ${what} (${waited} ms)${more}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
