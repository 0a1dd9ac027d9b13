import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

let lastTime = 0;
let lastRandom: Uint8Array = new Uint8Array(10);

function increment(bytes: Uint8Array): Uint8Array {
  const next = Uint8Array.from(bytes);
  for (let i = next.length - 1; i >= 0; i--) {
    if (next[i] === 0xff) {
      next[i] = 0;
    } else {
      next[i]! += 1;
      break;
    }
  }
  return next;
}

/**
 * A ULID in lower-case Crockford base32: 48 bits of milliseconds then 80 random bits, so ids sort
 * by creation time. Within one millisecond of one process the random part is incremented, so ids
 * made by one process are strictly increasing.
 */
export function ulid(now = Date.now()): string {
  if (now <= lastTime) {
    lastRandom = increment(lastRandom);
  } else {
    lastTime = now;
    lastRandom = new Uint8Array(randomBytes(10));
  }
  let out = "";
  let time = lastTime;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[time % 32] + out;
    time = Math.floor(time / 32);
  }
  // 80 bits → 16 characters of 5 bits, as two halves of 40 bits (exact in a double; no BigInt)
  return out + base32of40(lastRandom, 0) + base32of40(lastRandom, 5);
}

/** Bytes `offset`..`offset + 4` (40 bits, big-endian) as 8 base32 characters. */
function base32of40(bytes: Uint8Array, offset: number): string {
  let value = 0;
  for (let i = offset; i < offset + 5; i++) value = value * 256 + bytes[i]!;
  let out = "";
  for (let i = 0; i < 8; i++) {
    out = ALPHABET[value % 32] + out;
    value = Math.floor(value / 32);
  }
  return out;
}

export type IdPrefix = "acc" | "key" | "wh" | "evt" | "dlv" | "att" | "err";

/** A prefixed, time-sortable id such as `wh_01jf…`. */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${ulid()}`;
}
