// The quick retry of AddPartitionsToTxn on CONCURRENT_TRANSACTIONS (20 ms, as the Java client), per driver;
// the real-broker effect is measured by bench:transactions.

import { assert, describe, it } from "@effect/vitest"
import { ProtocolError, ResponseError } from "@platformatic/kafka"
import type * as KafkaJs from "kafkajs"
import { vi } from "vitest"
import { retryAddPartitionsQuickly } from "../../src/kafkajs/concurrentTransactions.ts"
import { quickAddPartitionsRetry } from "../../src/platformatic/PlatformaticProducer.ts"

describe("@platformatic/kafka: retryDelay of the transactional client", () => {
  const usual = (_client: unknown, _operation: string, attempt: number) => 100 * 2 ** (attempt - 1)
  const delay = quickAddPartitionsRetry(usual)
  // the client hands the response's error over: a ResponseError holding one ProtocolError per failed path
  const concurrent = new ResponseError(24, 3, { "/results/0": [51, null] }, undefined)

  it("AddPartitionsToTxn answered CONCURRENT_TRANSACTIONS: 20 ms twice, then the usual backoff from its start", () => {
    const delays = [1, 2, 3, 4, 5].map((attempt) => delay({}, "addPartitionsToTransaction", attempt, 5, concurrent))
    assert.deepStrictEqual(delays, [20, 20, 100, 200, 400])
  })

  it("other errors and other operations keep the usual backoff", () => {
    const loading = new ProtocolError("COORDINATOR_LOAD_IN_PROGRESS")
    assert.strictEqual(delay({}, "addPartitionsToTransaction", 1, 5, loading), 100)
    assert.strictEqual(delay({}, "endTransaction", 1, 5, concurrent), 100)
    assert.strictEqual(delay({}, "produce", 2, 5, new Error("x")), 200)
  })
})

describe("kafkajs: AddPartitionsToTxn hook", () => {
  /** A stand-in for a kafkajs `Kafka` instance: its private cluster factory, one broker. */
  const fakeKafka = (addPartitionsToTxn: () => Promise<unknown>) => {
    const broker = { addPartitionsToTxn }
    const cluster = { findBroker: async () => broker }
    const kafka = { [Symbol("private:Kafka:createCluster")]: () => cluster }
    return { kafka: kafka as unknown as KafkaJs.Kafka, cluster, broker }
  }
  const failing = (type: string, times: number) => {
    let calls = 0
    const add = async () => {
      calls++
      if (calls <= times) throw Object.assign(new Error(type), { type })
      return "added"
    }
    return { add, calls: () => calls }
  }
  const brokerOf = async (kafka: KafkaJs.Kafka) => {
    const create = (kafka as unknown as Record<symbol, () => { findBroker: () => Promise<unknown> }>)[
      Object.getOwnPropertySymbols(kafka)[0]!
    ]!
    return (await create().findBroker()) as { addPartitionsToTxn: () => Promise<unknown> }
  }

  // fake timers: the waits are checked by the clock they ask for, not by how long the machine took
  it("CONCURRENT_TRANSACTIONS three times: retried after 20 ms each, then it succeeds", async () => {
    const { add, calls } = failing("CONCURRENT_TRANSACTIONS", 3)
    const { kafka } = fakeKafka(add)
    retryAddPartitionsQuickly(kafka)
    const broker = await brokerOf(kafka)
    vi.useFakeTimers()
    try {
      const answer = broker.addPartitionsToTxn()
      await vi.advanceTimersByTimeAsync(19)
      assert.strictEqual(calls(), 1, "no retry before 20 ms")
      await vi.advanceTimersByTimeAsync(1)
      assert.strictEqual(calls(), 2)
      await vi.advanceTimersByTimeAsync(40)
      assert.strictEqual(calls(), 4, "three retries in 60 ms (the usual waits would be 100, 200, 400 ms)")
      assert.strictEqual(await answer, "added")
    } finally {
      vi.useRealTimers()
    }
  })

  it("still CONCURRENT_TRANSACTIONS after 5 quick retries: the error goes on to kafkajs' own retry", async () => {
    const { add, calls } = failing("CONCURRENT_TRANSACTIONS", 100)
    const { kafka } = fakeKafka(add)
    retryAddPartitionsQuickly(kafka)
    const error = await (await brokerOf(kafka)).addPartitionsToTxn().catch((e: unknown) => e)
    assert.strictEqual((error as { type?: string }).type, "CONCURRENT_TRANSACTIONS")
    assert.strictEqual(calls(), 6)
  })

  it("another error is not retried here", async () => {
    const { add, calls } = failing("COORDINATOR_LOAD_IN_PROGRESS", 1)
    const { kafka } = fakeKafka(add)
    retryAddPartitionsQuickly(kafka)
    const error = await (await brokerOf(kafka)).addPartitionsToTxn().catch((e: unknown) => e)
    assert.strictEqual((error as { type?: string }).type, "COORDINATOR_LOAD_IN_PROGRESS")
    assert.strictEqual(calls(), 1)
  })
})
