/**
 * Receipts from base offsets: Kafka answers a produce request with one base offset per partition, and the
 * records of that partition's batch are at `base`, `base + 1`, ... in the order they were sent.
 *
 * @internal
 */

/** The key of one topic-partition in the maps below. */
export const partitionKey = (topic: string, partition: number): string => `${topic}\u0000${partition}`

/** Where one record went: its topic and partition (the driver knows them before it sends). */
export interface Placement {
  readonly topic: string
  readonly partition: number
}

/**
 * Each record's offset (a decimal string), in input order: the base offset of its partition plus its place
 * among the records of that partition. `undefined` for a record whose partition has no base offset (the
 * broker answered nothing for it).
 */
export const offsetsFromBase = (
  placements: ReadonlyArray<Placement>,
  baseOffsets: ReadonlyMap<string, bigint>
): Array<string | undefined> => {
  const seen = new Map<string, bigint>()
  return placements.map(({ partition, topic }) => {
    const key = partitionKey(topic, partition)
    const base = baseOffsets.get(key)
    if (base === undefined) return undefined
    const index = seen.get(key) ?? 0n
    seen.set(key, index + 1n)
    return String(base + index)
  })
}
