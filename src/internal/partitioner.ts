/**
 * The Java client's default partitioner, for drivers and FakeKafka that place records themselves: a keyed
 * record goes to `toPositive(murmur2(key)) % partitions` (Java: `BuiltInPartitioner.partitionForKey`), so a
 * key lands where the Java client and kafkajs put it; a record without a key goes round-robin per topic,
 * starting at a random partition, as kafkajs's `DefaultPartitioner` does.
 *
 * @internal
 */

const seed = 0x9747b28c
const m = 0x5bd1e995

/**
 * Kafka's murmur2 hash of the bytes (`org.apache.kafka.common.utils.Utils.murmur2`), a signed 32-bit
 * integer. 32-bit arithmetic throughout (`Math.imul`, `| 0`), as Java's `int`.
 */
export const murmur2 = (data: Uint8Array): number => {
  const length = data.length
  let h = (seed ^ length) | 0
  const whole = length & ~3
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m) ^ k
  }
  // the tail, as the Java original's switch falls through: byte 2, then 1, then 0 and a multiply
  const tail = length & 3
  if (tail === 3) h ^= data[whole + 2]! << 16
  if (tail >= 2) h ^= data[whole + 1]! << 8
  if (tail >= 1) {
    h ^= data[whole]!
    h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

/** Java's `Utils.toPositive`: clears the sign bit (not `Math.abs`, so the mapping matches the Java client). */
export const toPositive = (n: number): number => n & 0x7fffffff

/** The partition of a keyed record: `toPositive(murmur2(key)) % partitions`. */
export const keyPartition = (key: Uint8Array, partitions: number): number => toPositive(murmur2(key)) % partitions

/** Chooses partitions for records; one per producer, as a client has one partitioner per producer. */
export interface Partitioner {
  /** The partition for a record of `topic` with this key (null: round-robin), among `partitions`. */
  readonly partition: (topic: string, key: Uint8Array | null, partitions: number) => number
}

/**
 * A partitioner: murmur2 for keys; for records without a key, a counter per topic that starts at a random
 * value and counts up (kafkajs: `toPositive(++counter) % partitions`).
 */
export const make = (random: () => number = Math.random): Partitioner => {
  const counters = new Map<string, number>()
  return {
    partition: (topic, key, partitions) => {
      if (key !== null) return keyPartition(key, partitions)
      const next = ((counters.get(topic) ?? Math.floor(random() * 0x1_0000_0000)) + 1) % 0x1_0000_0000
      counters.set(topic, next)
      return toPositive(next) % partitions
    }
  }
}
