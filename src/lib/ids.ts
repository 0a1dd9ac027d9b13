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
  // 80 bits → 16 characters of 5 bits
  let bits = 0n;
  for (const byte of lastRandom) bits = (bits << 8n) | BigInt(byte);
  let random = "";
  for (let i = 0; i < 16; i++) {
    random = ALPHABET[Number(bits & 31n)] + random;
    bits >>= 5n;
  }
  return out + random;
}

export type IdPrefix = "acc" | "key" | "wh" | "evt" | "dlv" | "att" | "err";

/** A prefixed, time-sortable id such as `wh_01jf…`. */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${ulid()}`;
}
