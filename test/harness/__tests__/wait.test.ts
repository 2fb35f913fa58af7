/** waitFor: resolves as soon as the condition holds, fails loudly when it never does. */
import { waitFor } from "..";

describe("waitFor", () => {
  it("resolves with the probe's first truthy value, without waiting longer", async () => {
    let probes = 0;
    const value = await waitFor(() => (++probes === 3 ? { ready: true } : null), "the third probe", { intervalMs: 1 });
    expect(value).toEqual({ ready: true });
    expect(probes).toBe(3);
  });

  it("awaits async probes", async () => {
    let n = 0;
    await expect(waitFor(async () => ++n >= 2 && n, "two probes", { intervalMs: 1 })).resolves.toBe(2);
  });

  it("fails after the deadline, naming what it waited for and the detail", async () => {
    const started = Date.now();
    await expect(waitFor(() => false, "a condition that never holds", { timeoutMs: 50, intervalMs: 5, detail: () => "last: nothing" })).rejects.toThrow(
      /^timed out waiting for a condition that never holds \(\d+ ms\)\nlast: nothing$/,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
  });

  it("ends the wait at once when the probe throws", async () => {
    let probes = 0;
    const failing = waitFor(
      () => {
        probes++;
        throw new Error("the process exited");
      },
      "a process",
      { timeoutMs: 10_000 },
    );
    await expect(failing).rejects.toThrow("the process exited");
    expect(probes).toBe(1);
  });
});
