/**
 * Event ids: UUIDv7 (RFC 9562), 48 bits of milliseconds then random bits, so ids sort by creation time.
 * Within one millisecond a counter in the 12 `rand_a` bits keeps the ids of one process increasing.
 *
 * @module
 * @internal
 */
import { randomBytes } from "node:crypto"

let lastMillis = -1
let sequence = 0

/** A new UUIDv7 for the time `now` (ms since the epoch). */
export const uuidv7 = (now: number = Date.now()): string => {
  if (now <= lastMillis) {
    sequence = (sequence + 1) & 0xfff
    // the counter wrapped within one millisecond: borrow the next one, order still holds
    if (sequence === 0) lastMillis += 1
  } else {
    lastMillis = now
    sequence = 0
  }
  const bytes = randomBytes(16)
  const millis = lastMillis
  bytes[0] = Math.floor(millis / 2 ** 40) & 0xff
  bytes[1] = Math.floor(millis / 2 ** 32) & 0xff
  bytes[2] = (millis >>> 24) & 0xff
  bytes[3] = (millis >>> 16) & 0xff
  bytes[4] = (millis >>> 8) & 0xff
  bytes[5] = millis & 0xff
  bytes[6] = 0x70 | (sequence >>> 8)
  bytes[7] = sequence & 0xff
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  const hex = bytes.toString("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}
