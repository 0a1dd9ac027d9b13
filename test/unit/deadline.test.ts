import { afterEach, describe, expect, it, vi } from "vitest";
import { createDeadlines } from "../../src/lib/deadline.ts";

describe("createDeadlines", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("aborts with a TimeoutError no sooner than the timeout, sharing one signal per slice", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "performance"] });
    const deadline = createDeadlines(50);
    const first = deadline(120);
    vi.advanceTimersByTime(10); // still in the same 50 ms slice
    const second = deadline(110);
    expect(second).toBe(first);
    const later = deadline(1_000);
    expect(later).not.toBe(first);

    vi.advanceTimersByTime(100); // 110 ms after the first: before its deadline
    expect(first.aborted).toBe(false);
    vi.advanceTimersByTime(50); // 160 ms: past 120 ms, within one slice of it
    expect(first.aborted).toBe(true);
    expect(first.reason).toBeInstanceOf(DOMException);
    expect((first.reason as DOMException).name).toBe("TimeoutError");
    expect(later.aborted).toBe(false);
    // a new request after the slice fired gets a fresh, live signal
    expect(deadline(120).aborted).toBe(false);
  });
});
