import { describe, expect, it } from "vitest";
import { createDeadlines } from "../../src/lib/deadline.ts";

describe("createDeadlines", () => {
  it("aborts with a TimeoutError no sooner than the timeout, sharing one signal per slice", async () => {
    const deadline = createDeadlines(50);
    const started = Date.now();
    const first = deadline(120);
    const second = deadline(120);
    expect(second).toBe(first);
    const later = deadline(1_000);
    expect(later).not.toBe(first);

    const reason = await new Promise<unknown>((resolve) => first.addEventListener("abort", () => resolve(first.reason)));
    expect(Date.now() - started).toBeGreaterThanOrEqual(119);
    expect(reason).toBeInstanceOf(DOMException);
    expect((reason as DOMException).name).toBe("TimeoutError");
    expect(later.aborted).toBe(false);
    // a new request after the slice fired gets a fresh, live signal
    expect(deadline(120).aborted).toBe(false);
  });
});
