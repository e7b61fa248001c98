/**
 * Checks what a topic holds: how many records, duplicates (the same event id header, or the same key and
 * value when there is no such header), and gaps in the offsets of each partition (offsets the reader
 * reported as markers or aborted records are no gap). The `verify` command prints this; tests assert on it.
 *
 * @module
 */

/** What the audit needs of a record: where it is and what identifies it (`TopicReader.ReadRecord` will do). */
export interface AuditRecord {
  /** Its partition. */
  readonly partition: number
  /** Its offset in the partition, as a decimal string. */
  readonly offset: string
  /** The key bytes, null without a key. */
  readonly key: Uint8Array | null
  /** The value bytes, null for a tombstone. */
  readonly value: Uint8Array | null
  /** The headers, by name. */
  readonly headers: Readonly<Record<string, Uint8Array>>
}

/** Missing offsets in a partition: none between `after` and `next` was read. */
export interface Gap {
  /** The partition with the gap. */
  readonly partition: number
  /** The offset after which records are missing. */
  readonly after: string
  /** The next offset present. */
  readonly next: string
}

/** What a topic holds, and whether that is what was expected. */
export interface Report {
  /** Records read, in all partitions. */
  readonly count: number
  /** Per partition that holds records, in partition order. */
  readonly partitions: ReadonlyArray<{
    /** The partition. */
    readonly partition: number
    /** Records read from it. */
    readonly count: number
    /** Its lowest offset read. */
    readonly first: string
    /** Its highest offset read. */
    readonly last: string
  }>
  /** Records beyond the first of each identity. */
  readonly duplicates: number
  /** Identities seen more than once (at most 20 listed). */
  readonly duplicateIds: ReadonlyArray<string>
  /** Offset gaps, per partition in offset order. */
  readonly gaps: ReadonlyArray<Gap>
  /** The expected count, when one was given. */
  readonly expected: number | undefined
  /** Count as expected (when given), no duplicates, no gaps. */
  readonly ok: boolean
}

/** What to check beyond duplicates and gaps. */
export interface Options {
  /** Expected record count. */
  readonly expect?: number | undefined
  /** Header that carries a unique event id. Default "eventId"; without it, key + value identify a record. */
  readonly idHeader?: string | undefined
  /**
   * Offsets known to hold no record for the read (`TopicReader`'s `onSkipped`: transaction markers, aborted
   * records at read_committed): a gap they cover whole is not a gap.
   */
  readonly skipped?: ReadonlyArray<Skipped> | undefined
}

/** Offsets `from` to `to` (inclusive) of a partition that hold no record for the read. */
export interface Skipped {
  /** The partition. */
  readonly partition: number
  /** The first offset, as a decimal string. */
  readonly from: string
  /** The last offset, as a decimal string. */
  readonly to: string
}

/** Whether the runs in `skipped` cover every offset from `from` to `to` of the partition. */
const covered = (skipped: ReadonlyArray<Skipped>, partition: number, from: bigint, to: bigint): boolean => {
  const runs = skipped
    .filter((s) => s.partition === partition)
    .map((s) => [BigInt(s.from), BigInt(s.to)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  let next = from
  for (const [first, last] of runs) {
    if (first > next) break
    if (last >= next) next = last + 1n
    if (next > to) return true
  }
  return next > to
}

const hex = (bytes: Uint8Array | null | undefined) => (bytes == null ? "-" : Buffer.from(bytes).toString("base64"))

/**
 * Audits records read from a topic: counts per partition, duplicates (by the id header, else key and value)
 * and offset gaps. `ok` when the count is as expected (if given) and there are neither duplicates nor gaps.
 */
export const audit = (records: ReadonlyArray<AuditRecord>, options: Options = {}): Report => {
  const idHeader = options.idHeader ?? "eventId"
  const seen = new Map<string, number>()
  const byPartition = new Map<number, Array<bigint>>()
  for (const record of records) {
    const id = record.headers[idHeader]
    const identity = id === undefined ? `${hex(record.key)}/${hex(record.value)}` : Buffer.from(id).toString("utf8")
    seen.set(identity, (seen.get(identity) ?? 0) + 1)
    const offsets = byPartition.get(record.partition) ?? []
    offsets.push(BigInt(record.offset))
    byPartition.set(record.partition, offsets)
  }
  const gaps: Array<Gap> = []
  const partitions = [...byPartition.entries()]
    .sort(([a], [b]) => a - b)
    .map(([partition, offsets]) => {
      offsets.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
      for (let i = 1; i < offsets.length; i++) {
        const after = offsets[i - 1]!
        if (offsets[i]! !== after + 1n && !covered(options.skipped ?? [], partition, after + 1n, offsets[i]! - 1n)) {
          gaps.push({ partition, after: String(offsets[i - 1]), next: String(offsets[i]) })
        }
      }
      return { partition, count: offsets.length, first: String(offsets[0]), last: String(offsets.at(-1)) }
    })
  const repeated = [...seen.entries()].filter(([, n]) => n > 1)
  const duplicates = repeated.reduce((sum, [, n]) => sum + n - 1, 0)
  return {
    count: records.length,
    partitions,
    duplicates,
    duplicateIds: repeated.slice(0, 20).map(([id]) => id),
    gaps,
    expected: options.expect,
    ok: (options.expect === undefined || options.expect === records.length) && duplicates === 0 && gaps.length === 0
  }
}
