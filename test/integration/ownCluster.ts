/**
 * A cluster of a test file's own, for faults that must not disturb the run's shared broker: started before the
 * block's tests (same Kafka version as the run), stopped after them. Returns a getter for the running cluster.
 */
import { afterAll, beforeAll } from "@effect/vitest"
import { type KafkaCluster, type StartClusterOptions, startCluster } from "../../testbed/KafkaCluster.ts"
import { kafkaVersion } from "./broker.ts"

export const ownCluster = (options: Omit<StartClusterOptions, "version"> = {}): (() => KafkaCluster) => {
  let cluster: KafkaCluster | undefined
  beforeAll(async () => {
    cluster = await startCluster({ version: kafkaVersion(), ...options })
  })
  afterAll(async () => {
    await cluster?.stop()
  })
  return () => {
    if (cluster === undefined) throw new Error("the cluster is not started yet")
    return cluster
  }
}

/** A restarted broker registers again ~6 s after its death instead of 9 s (broker session timeout). Not less: on a loaded
 * 2-core machine a 4 s session fenced healthy brokers (controller log: "its session has timed out"). */
export const quickRestart = { "broker.session.timeout.ms": 6000, "broker.heartbeat.interval.ms": 1000 } as const

/** SCRAM users of the SASL tests: admin is a super user, alice has no ACLs. */
export const scramUsers = {
  users: [
    { name: "admin", password: "admin-secret" },
    { name: "alice", password: "alice-secret" }
  ],
  superUsers: ["admin"]
}
