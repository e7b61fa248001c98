/**
 * kafkajs retries an AddPartitionsToTxn answered CONCURRENT_TRANSACTIONS by retrying the whole send with its
 * producer retry (100 ms first, by default). This hook retries the request itself first, up to 5 times
 * after 20 ms each (about what the first usual wait would be), as the Java client does; if the coordinator
 * is still busy after that, the error goes on to kafkajs' own retry as before (see
 * `internal/concurrentTransactions.ts`).
 *
 * @module
 */
import type * as KafkaJs from "kafkajs"
import { errorName, retryDelayMillis } from "../internal/concurrentTransactions.ts"
import { onEachBroker } from "./brokerHook.ts"

/** The quick retries before kafkajs' own retry takes over. */
const quickRetries = 5

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Makes the clients that `kafka` creates from now on retry AddPartitionsToTxn quickly on
 * CONCURRENT_TRANSACTIONS (see the module notes).
 *
 * @internal
 */
export const retryAddPartitionsQuickly = (kafka: KafkaJs.Kafka): void =>
  onEachBroker(kafka, (broker) => {
    const add = (broker.addPartitionsToTxn as (request: unknown) => Promise<unknown>).bind(broker)
    broker.addPartitionsToTxn = async (request: unknown) => {
      for (let retry = 1; ; retry++) {
        try {
          return await add(request)
        } catch (error) {
          if (retry > quickRetries || (error as { type?: unknown } | null)?.type !== errorName) throw error
        }
        await sleep(retryDelayMillis)
      }
    }
  })
