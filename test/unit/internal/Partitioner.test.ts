/**
 * The Java client's partitioner (src/internal/partitioner.ts) against the Java client's own test vectors:
 * the cases of Kafka's `UtilsTest.testMurmur2` plus a few more (empty key, bytes >= 0x80, keys of the
 * contract suite). Every expected value below was checked by calling
 * `org.apache.kafka.common.utils.Utils.murmur2` / `toPositive` from kafka-clients-3.9.2.jar (the jar the
 * test bed downloads into .kafka/libs-3.9.2) with a small Java program on `java -cp '.kafka/libs-3.9.2/*'`.
 */
import { describe, expect, it } from "@effect/vitest"
import kafkajs from "kafkajs"
import * as Partitioner from "../../../src/internal/partitioner.ts"

const bytes = (s: string) => new TextEncoder().encode(s)

// [key, Utils.murmur2(key), Utils.toPositive(Utils.murmur2(key)) % 3]
const javaVectors: ReadonlyArray<[string, Uint8Array, number, number]> = [
  ["21", bytes("21"), -973932308, 0],
  ["foobar", bytes("foobar"), -790332482, 0],
  ["a-little-bit-long-string", bytes("a-little-bit-long-string"), -985981536, 2],
  ["a-little-bit-longer-string", bytes("a-little-bit-longer-string"), -1486304829, 2],
  [
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
    bytes("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
    -58897971,
    2
  ],
  ["abc (new byte[]{'a','b','c'})", new Uint8Array([0x61, 0x62, 0x63]), 479470107, 0],
  ["empty", new Uint8Array([]), 275646681, 0],
  ["user-1", bytes("user-1"), 1404122828, 2],
  ["k0", bytes("k0"), -704538303, 2],
  ["bytes ff 80 7f 00 fe", new Uint8Array([0xff, 0x80, 0x7f, 0x00, 0xfe]), -1958495739, 2]
]

describe("partitioner: the Java client's murmur2", () => {
  it.each(javaVectors)("murmur2(%s) is the Java client's", (_, key, hash, partitionOf3) => {
    expect(Partitioner.murmur2(key)).toBe(hash)
    expect(Partitioner.keyPartition(key, 3)).toBe(partitionOf3)
  })

  it("keys land where kafkajs's DefaultPartitioner puts them, for any partition count", () => {
    const kafkajsPartitioner = kafkajs.Partitioners.DefaultPartitioner()
    for (let partitions = 1; partitions <= 12; partitions++) {
      const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        replicas: [0],
        isr: [0],
        partitionErrorCode: 0
      }))
      for (let i = 0; i < 200; i++) {
        const key = Buffer.from(`key-${i}-${"x".repeat(i % 7)}`)
        expect(Partitioner.keyPartition(key, partitions)).toBe(
          kafkajsPartitioner({ topic: "t", partitionMetadata, message: { key, value: null } })
        )
      }
    }
  })

  it("records without a key go round-robin per topic from a random start", () => {
    const partitioner = Partitioner.make(() => 0.5)
    const start = 0x8000_0000 + 1 // the first value counted up from the random start
    const first = Partitioner.toPositive(start) % 4
    const seen = Array.from({ length: 8 }, () => partitioner.partition("a", null, 4))
    expect(seen).toEqual(seen.map((_, i) => (first + i) % 4))
    // another topic has its own counter
    expect(partitioner.partition("b", null, 4)).toBe(first)
    // a key does not move the counter
    partitioner.partition("a", bytes("k"), 4)
    expect(partitioner.partition("a", null, 4)).toBe((first + 8) % 4)
  })
})
