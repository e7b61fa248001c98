/**
 * kafkajs 2.2.4 writes a send's records to each partition leader at once, one Produce request per broker, and
 * retries the send as soon as one request fails (`producer/sendMessages.js`: `await Promise.all(requests)`
 * inside the retrier). A request that is still in flight at that moment has no answer recorded yet (its broker
 * holds `null` in `responsePerBroker`, and `brokersWithoutResponse` counts `null` as no answer), so the retry
 * sends its partitions again. The retry waits for that broker's lock; when the first request then succeeds, it
 * has already advanced the partitions' sequence numbers (`updateSequence` before the request, taken back only
 * on failure), so the retry carries the next numbers and the broker writes the same records a second time: for
 * a transactional producer, inside the transaction, which then commits them twice.
 *
 * Seen on the real broker (the coordinator-kill test, `test/integration/transaction-load.integration.test.ts`,
 * Kafka 3.9.2 and 4.1.2): the killed node led one partition of a transaction, so its Produce failed at once,
 * while the Produce to a live leader waited for the dead replica to leave the in-sync set (acks=all); the
 * broker's log (`kafka.tools.DumpLogSegments`) held that partition's records twice, same producer id, epoch
 * and create time, sequence numbers 68-72 and then 73-77.
 *
 * Two guards, per client (a kafkajs cluster):
 * - A failed Produce or AddPartitionsToTxn (each broker's part of a transactional send asks the coordinator to
 *   add its partitions first, under the same broker lock) is reported to kafkajs only once the client's other
 *   such requests in flight have settled. kafkajs has then recorded their answers, so its retry resends only
 *   the partitions whose request failed, with the sequence numbers it took back (a duplicate of those the broker
 *   drops itself).
 * - kafkajs groups a retry by the partitions' leaders at that moment, so a partition already written whose
 *   leader changed to a broker that has to be asked again would still be sent twice. A Produce holding a record
 *   that an earlier Produce of the client wrote (kafkajs hands the same message objects to every attempt) is
 *   therefore refused before it is sent (`KafkaJSWouldWriteAgain`, not retriable): the send fails instead of
 *   writing twice, and a transaction with that send aborts.
 *
 * @module
 */
import type * as KafkaJs from "kafkajs"
import { type Broker, onEachBroker } from "./brokerHook.ts"

type Request = (request: unknown) => Promise<unknown>

/** What one client's brokers share. */
interface ClientProduces {
  /** The Produce and AddPartitionsToTxn requests sent and not settled yet. */
  readonly inFlight: Set<Promise<unknown>>
  /** The records (kafkajs message objects) an answered Produce wrote. */
  readonly written: WeakSet<object>
}

/**
 * kafkajs was about to send again a record that a Produce of the same client already wrote (see the module
 * notes). Not retriable for kafkajs, so the send fails at once; the driver classifies it as a retriable,
 * ambiguous failure (the record is in the log once, and in a transaction the transaction aborts).
 */
export class KafkaJSWouldWriteAgain extends Error {
  override readonly name = "KafkaJSWouldWriteAgain"
  /** kafkajs's retrier gives up on it. */
  readonly retriable = false
}

/** The kafkajs message objects of a Produce request (`topicData[].partitions[].messages[]`). */
const recordsOf = (request: unknown): Array<object> => {
  const topicData = (request as { topicData?: ReadonlyArray<{ partitions?: ReadonlyArray<unknown> }> }).topicData
  return (topicData ?? []).flatMap((topic) =>
    (topic.partitions ?? []).flatMap((partition) => (partition as { messages?: ReadonlyArray<object> }).messages ?? [])
  )
}

// one turn of the event loop: kafkajs records an answer in the continuation of its `await broker.produce(...)`
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Sends `request` with `call`; a failure is reported once the client's other requests in flight settled. */
const settled = (client: ClientProduces, call: Request, request: unknown, onAnswer: () => void) => {
  const sent = call(request)
  client.inFlight.add(sent)
  return sent.then(
    (response) => {
      client.inFlight.delete(sent)
      onAnswer()
      return response
    },
    async (error: unknown) => {
      client.inFlight.delete(sent)
      // the raw requests, not their wrapped answers, so two failing requests never wait for each other; again
      // after each turn, for the Produce a broker's part sends once its AddPartitionsToTxn was answered (bounded:
      // the transactional driver runs one send at a time, so no other send adds requests meanwhile)
      await nextTurn()
      for (let round = 0; client.inFlight.size > 0 && round < 10; round++) {
        await Promise.allSettled([...client.inFlight])
        await nextTurn()
      }
      throw error
    }
  )
}

/**
 * Wraps one broker's `produce` and `addPartitionsToTxn` (see the module notes); `client` is shared by the
 * brokers of one client.
 *
 * @internal
 */
export const guardProduce = (broker: Broker, client: ClientProduces): void => {
  if (typeof broker.produce === "function") guardWrites(broker, client)
  if (typeof broker.addPartitionsToTxn === "function") {
    const add = (broker.addPartitionsToTxn as Request).bind(broker)
    broker.addPartitionsToTxn = (request: unknown) => settled(client, add, request, () => {})
  }
}

const guardWrites = (broker: Broker, client: ClientProduces): void => {
  const produce = (broker.produce as Request).bind(broker)
  broker.produce = (request: unknown) => {
    const records = recordsOf(request)
    if (records.some((record) => client.written.has(record))) {
      return Promise.reject(
        new KafkaJSWouldWriteAgain(
          "kafkajs retried a send with records a Produce of this client already wrote (their partition's leader " +
            "changed): not sent again"
        )
      )
    }
    return settled(client, produce, request, () => {
      for (const record of records) client.written.add(record)
    })
  }
}

/** The state of a client, by its cluster. */
const clientOf = (() => {
  const byCluster = new WeakMap<object, ClientProduces>()
  return (cluster: object): ClientProduces => {
    let client = byCluster.get(cluster)
    if (client === undefined) {
      client = { inFlight: new Set(), written: new WeakSet() }
      byCluster.set(cluster, client)
    }
    return client
  }
})()

/**
 * Makes the clients that `kafka` creates from now on never send a record twice through kafkajs's retry of a
 * send that went to several brokers (see the module notes).
 *
 * @internal
 */
export const guardProduceRetries = (kafka: KafkaJs.Kafka): void =>
  onEachBroker(kafka, (broker, cluster) => guardProduce(broker, clientOf(cluster)))
