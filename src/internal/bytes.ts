/**
 * Record bytes as Node's Kafka clients take them: a `Buffer` over the same memory, never a copy.
 *
 * @internal
 */

/** A `Buffer` view of the bytes (the same object when it already is one); null stays null. */
export const toBuffer = (bytes: Uint8Array | null): Buffer | null =>
  bytes === null ? null : Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
