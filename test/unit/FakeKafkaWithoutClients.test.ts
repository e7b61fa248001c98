/**
 * FakeKafka needs no Kafka client (issue 11): "effect-kafka-publisher/testing" imports and FakeKafka
 * partitions keys, in a child process where kafkajs, kafkajs-snappy and @platformatic/kafka cannot be
 * resolved; and no module of src/ outside the driver folders and the reader imports a client.
 */

import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { runWithout } from "../support/runWithout.ts"

const script = `
import { Effect } from "effect"
import { FakeKafka } from "effect-kafka-publisher/testing"
const partition = await Effect.runPromise(
  Effect.gen(function* () {
    const fake = yield* FakeKafka.make({ topics: { t: { partitions: 3 } } })
    const [m] = yield* fake.producer.send([{ topic: "t", key: new TextEncoder().encode("user-1"), value: null, headers: {} }])
    return m.partition
  })
)
console.log(JSON.stringify({ partition }))
`

const clientImport =
  /from "(kafkajs|kafkajs-snappy|@platformatic\/kafka)(\/[^"]*)?"|import\("(kafkajs|kafkajs-snappy|@platformatic\/kafka)/

const sourceFiles = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    return entry.isDirectory() ? sourceFiles(full) : full.endsWith(".ts") ? [full] : []
  })

describe("no Kafka client outside the drivers", () => {
  it("FakeKafka runs with no Kafka client installed, keys on the Java client's partition", () => {
    const result = runWithout(["kafkajs", "kafkajs-snappy", "@platformatic/kafka"], script)
    expect(result.stderr).not.toMatch(/Cannot find package/)
    // Utils.toPositive(Utils.murmur2("user-1".getBytes())) % 3 == 2 (kafka-clients 3.9.2)
    expect(JSON.parse(result.stdout.trim().split("\n").at(-1)!)).toEqual({ partition: 2 })
  })

  it("only src/kafkajs, src/platformatic and src/reader import a Kafka client", () => {
    const allowed = ["src/kafkajs/", "src/platformatic/", "src/reader/"]
    const offenders = sourceFiles("src")
      .filter((file) => !allowed.some((dir) => file.startsWith(dir)))
      .filter((file) => clientImport.test(fs.readFileSync(file, "utf8")))
    expect(offenders).toEqual([])
  })

  it("the core classification names no client: kafkajs and PLT_KFK_ live in the drivers' vocabularies", () => {
    expect(fs.readFileSync("src/ErrorClassification.ts", "utf8")).not.toMatch(/kafkajs|PLT_KFK_/i)
  })
})
