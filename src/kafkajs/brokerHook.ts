/**
 * Hooks into the brokers of a kafkajs `Kafka` instance's clients, through its private cluster factory (each
 * client it creates, consumer, producer or admin, calls it for its cluster). kafkajs offers no public way to
 * see a raw fetch answer or to retry one protocol error sooner; kafkajs 2.2.4 is its last release (2023), so
 * these internals no longer move, and the tests that rely on them run against the real broker.
 *
 * @module
 */
import type * as KafkaJs from "kafkajs"

/**
 * The key of the `Kafka` instance's private cluster factory; throws when this kafkajs version has none.
 *
 * @internal
 */
export const clusterFactoryKey = (kafka: KafkaJs.Kafka): symbol => {
  const symbol = Object.getOwnPropertySymbols(kafka).find((s) => s.description === "private:Kafka:createCluster")
  const factory = symbol === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[symbol]
  if (symbol === undefined || typeof factory !== "function") {
    throw new Error("this kafkajs version has no cluster factory (expected 2.2.x)")
  }
  return symbol
}

/** A kafkajs broker connection (internal): its protocol requests, by name. */
export type Broker = Record<string, unknown>

interface Cluster {
  findBroker(query: unknown): Promise<Broker>
}

/**
 * Calls `hook` once for each broker that a client of `kafka` created from now on uses (every request to a
 * broker goes through the cluster's `findBroker`), so the hook can wrap the broker's requests. `cluster` is
 * the client's own cluster (one per producer, consumer or admin), for state a hook keeps per client.
 *
 * @internal
 */
export const onEachBroker = (kafka: KafkaJs.Kafka, hook: (broker: Broker, cluster: object) => void): void => {
  const key = clusterFactoryKey(kafka)
  const slots = kafka as unknown as Record<symbol, (options: unknown) => Cluster>
  const create = slots[key]!
  const hooked = new WeakSet<Broker>()
  slots[key] = (options) => {
    const cluster = create(options)
    const findBroker = cluster.findBroker.bind(cluster)
    cluster.findBroker = async (query) => {
      const broker = await findBroker(query)
      if (!hooked.has(broker)) {
        hooked.add(broker)
        hook(broker, cluster)
      }
      return broker
    }
    return cluster
  }
}
