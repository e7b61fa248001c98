import { assert, describe, it } from "@effect/vitest"
import { abortedOffsets, type FetchedRecord } from "../../src/reader/abortedRecords.ts"

const ABORT = Uint8Array.of(0, 0, 0, 0)
const COMMIT = Uint8Array.of(0, 0, 0, 1)

/** A one-record batch of `producer` at `offset`: a data record, or a marker. */
const at = (offset: number, producer: string, marker?: Uint8Array, inTransaction = true): FetchedRecord => ({
  offset: `${offset}`,
  key: marker ?? null,
  batchContext: {
    firstOffset: `${offset}`,
    lastOffsetDelta: 0,
    producerId: producer,
    inTransaction,
    isControlBatch: marker !== undefined
  }
})

const sorted = (offsets: Set<string>) => [...offsets].map(Number).sort((a, b) => a - b)

describe("abortedOffsets", () => {
  it("aborted transactions listed in marker order, not first-offset order: all of them are dropped", () => {
    // a 0-1, b 2-3, c 4-5; c aborts (6), b commits (7), a aborts (8): the broker lists c before a
    const records = [at(0, "a"), at(1, "a"), at(2, "b"), at(3, "b"), at(4, "c"), at(5, "c")]
    records.push(at(6, "c", ABORT), at(7, "b", COMMIT), at(8, "a", ABORT))
    const aborted = [
      { producerId: "c", firstOffset: "4" },
      { producerId: "a", firstOffset: "0" }
    ]
    assert.deepStrictEqual(sorted(abortedOffsets(records, aborted)), [0, 1, 4, 5])
  })

  it("several aborted transactions started before one record: all start, none late", () => {
    // a and b both start before c's first record; a's next transaction (5-6) commits
    const records = [at(0, "a"), at(1, "b"), at(2, "a", ABORT), at(3, "b", ABORT), at(4, "c"), at(5, "a")]
    records.push(at(6, "a"), at(7, "a", COMMIT))
    const aborted = [
      { producerId: "a", firstOffset: "0" },
      { producerId: "b", firstOffset: "1" }
    ]
    assert.deepStrictEqual(sorted(abortedOffsets(records, aborted)), [0, 1])
  })

  it("one producer aborting twice in a fetch, a commit between", () => {
    const records = [at(0, "a"), at(1, "a", ABORT), at(2, "a"), at(3, "a", COMMIT), at(4, "a"), at(5, "a", ABORT)]
    const aborted = [
      { producerId: "a", firstOffset: "0" },
      { producerId: "a", firstOffset: "4" }
    ]
    assert.deepStrictEqual(sorted(abortedOffsets(records, aborted)), [0, 4])
  })

  it("an aborted transaction whose marker is past the fetch: its records to the end are dropped", () => {
    const records = [at(10, "a"), at(11, "b"), at(12, "a"), at(13, "b", COMMIT)]
    assert.deepStrictEqual(sorted(abortedOffsets(records, [{ producerId: "a", firstOffset: "3" }])), [10, 12])
  })

  it("records outside transactions, of the same producer id, are kept", () => {
    const records = [at(0, "a", undefined, false), at(1, "a"), at(2, "a", undefined, false)]
    assert.deepStrictEqual(sorted(abortedOffsets(records, [{ producerId: "a", firstOffset: "1" }])), [1])
  })

  it("a batch of several records in an aborted transaction: each of its records is dropped", () => {
    const batch = { firstOffset: "0", lastOffsetDelta: 2, producerId: "a", inTransaction: true, isControlBatch: false }
    const records: Array<FetchedRecord> = [0, 1, 2].map((o) => ({ offset: `${o}`, key: null, batchContext: batch }))
    records.push(at(3, "b"), at(4, "a", ABORT), at(5, "b", COMMIT))
    assert.deepStrictEqual(sorted(abortedOffsets(records, [{ producerId: "a", firstOffset: "0" }])), [0, 1, 2])
  })
})
