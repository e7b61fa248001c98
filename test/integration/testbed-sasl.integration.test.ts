// The test bed's SASL option: SCRAM users created at format time, and the authorizer with a super user.

import type { SASLOptions } from "kafkajs"
import kafkajs from "kafkajs"
import { afterAll, beforeAll, expect, it } from "vitest"
import { type KafkaCluster, startCluster } from "../../testbed/KafkaCluster.ts"
import { describeWithKafka, kafkaVersion } from "./broker.ts"

const { Kafka, logLevel, Partitioners } = kafkajs

describeWithKafka("test bed: SASL/SCRAM listener with an authorizer", () => {
  let cluster: KafkaCluster | undefined

  beforeAll(async () => {
    cluster = await startCluster({
      version: kafkaVersion(),
      sasl: {
        users: [
          { name: "admin", password: "admin-secret" },
          { name: "alice", password: "alice-secret" }
        ],
        superUsers: ["admin"]
      }
    })
  })

  afterAll(async () => {
    await cluster?.stop()
  })

  const client = (sasl: SASLOptions) =>
    new Kafka({
      clientId: `sasl-${sasl.mechanism}`,
      brokers: cluster!.saslBrokers!,
      sasl,
      logLevel: logLevel.NOTHING,
      retry: { retries: 1 }
    })

  it("lets the super user in, refuses a wrong password and denies a user without ACLs", async () => {
    const topic = `testbed-sasl-${Date.now()}`
    const admin = client({ mechanism: "scram-sha-512", username: "admin", password: "admin-secret" }).admin()
    await admin.connect()
    try {
      expect(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })).toBe(true)
    } finally {
      await admin.disconnect()
    }

    const intruder = client({ mechanism: "scram-sha-256", username: "alice", password: "wrong" }).producer()
    await expect(intruder.connect()).rejects.toThrow(/authentication failed/i)

    const alice = client({ mechanism: "scram-sha-256", username: "alice", password: "alice-secret" }).producer({
      createPartitioner: Partitioners.DefaultPartitioner
    })
    await alice.connect()
    try {
      await expect(alice.send({ topic, messages: [{ value: "x" }] })).rejects.toThrow(/not authorized/i)
    } finally {
      await alice.disconnect()
    }
  })
})
