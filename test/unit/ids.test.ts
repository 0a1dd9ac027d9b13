import { describe, expect, it } from "vitest";
import { newId, ulid, type IdPrefix } from "../../src/lib/ids.ts";

const CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz";
const BODY = /^[0-9abcdefghjkmnpqrstvwxyz]{26}$/;

/** The milliseconds encoded in the first 10 characters of a ULID. */
function timeOf(id: string): number {
  let time = 0;
  for (const char of id.slice(0, 10)) time = time * 32 + CROCKFORD.indexOf(char);
  return time;
}

describe("newId", () => {
  it.each<IdPrefix>(["acc", "key", "wh", "evt", "dlv", "att", "err"])("%s_ + a 26-character ULID", (prefix) => {
    const id = newId(prefix);
    const [head, body, ...rest] = id.split("_");
    expect(head).toBe(prefix);
    expect(rest).toEqual([]);
    expect(body).toMatch(BODY);
  });

  it("encodes the current time in its first 10 characters", () => {
    const before = Date.now();
    const body = newId("wh").slice("wh_".length);
    const after = Date.now();
    expect(timeOf(body)).toBeGreaterThanOrEqual(before);
    expect(timeOf(body)).toBeLessThanOrEqual(after);
  });

  it("is strictly increasing when many are made in a loop (many in the same millisecond)", () => {
    const ids = Array.from({ length: 5_000 }, () => newId("evt"));
    const times = ids.map((id) => timeOf(id.slice("evt_".length)));
    // The loop is fast enough that some ids share a millisecond: that is the case under test.
    expect(new Set(times).size).toBeLessThan(ids.length);
    for (let i = 1; i < ids.length; i++) {
      if (!(ids[i - 1]! < ids[i]!)) throw new Error(`ids ${i - 1} and ${i} are not increasing: ${ids[i - 1]} ${ids[i]}`);
    }
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe("ulid", () => {
  it("is strictly increasing within one fixed millisecond", () => {
    const now = Date.now() + 10_000;
    const ids = Array.from({ length: 1_000 }, () => ulid(now));
    for (const id of ids) {
      expect(id).toMatch(BODY);
      expect(timeOf(id)).toBe(now);
    }
    for (let i = 1; i < ids.length; i++) expect(ids[i - 1]! < ids[i]!).toBe(true);
  });

  it("sorts by time across milliseconds", () => {
    const base = Date.now() + 20_000;
    const a = ulid(base);
    const b = ulid(base + 1);
    const c = ulid(base + 60_000);
    expect(a < b && b < c).toBe(true);
    expect(timeOf(b) - timeOf(a)).toBe(1);
  });

  // Each test uses times later than the previous one's: ulid() remembers the latest time it saw.
  it("keeps increasing when the clock goes backwards", () => {
    const base = Date.now() + 200_000;
    const first = ulid(base);
    const second = ulid(base - 5_000);
    expect(second > first).toBe(true);
  });
});
