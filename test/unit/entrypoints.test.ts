// Which Kafka client each entry point loads: a fresh Node process imports one entry point (by the package's
// own name, as a user does) under a module load hook that records every module it resolves. The core and
// `/testing` must load no Kafka client; each driver loads its own client and not the other one.
import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { moduleLoadsOf } from "../support/moduleLoads.ts"

const clients = {
  kafkajs: "/node_modules/kafkajs/",
  "kafkajs-snappy": "/node_modules/kafkajs-snappy/",
  "@platformatic/kafka": "/node_modules/@platformatic/kafka/"
} as const
type Client = keyof typeof clients

const exportsOfPackage = (JSON.parse(readFileSync("package.json", "utf8")) as { exports: Record<string, unknown> })
  .exports

/** The Kafka clients a fresh process loads when it imports `entry` (and what it loaded, for messages). */
const clientsLoadedBy = async (entry: string) => {
  const loads = await moduleLoadsOf(`await import(${JSON.stringify(entry)})`)
  const urls = loads.map((load) => load.url)
  const firstLoad = (client: Client) => loads.find((load) => load.url.includes(clients[client]))
  const loaded = (Object.keys(clients) as Array<Client>).filter((client) => firstLoad(client) !== undefined)
  // who pulled each client in: the first importer outside that client's own files
  const importers = loaded.map((client) => {
    const first = loads.find((load) => load.url.includes(clients[client]) && !load.parent?.includes(clients[client]))
    return `${client} imported by ${first?.parent?.replace(`file://${process.cwd()}/`, "") ?? "?"}`
  })
  return { loaded, urls, why: importers.join("; ") }
}

describe("entry points and the Kafka clients they load", { timeout: 60_000 }, () => {
  it("effect-kafka-publisher (the core) loads no Kafka client", async () => {
    const { loaded, urls, why } = await clientsLoadedBy("effect-kafka-publisher")
    assert.isTrue(
      urls.some((url) => url.endsWith("/src/Publisher.ts")),
      "the hook saw the core load"
    )
    assert.deepStrictEqual(loaded, [], why)
  })

  it("effect-kafka-publisher/testing (FakeKafka, the readers) loads no Kafka client", async () => {
    const { loaded, why } = await clientsLoadedBy("effect-kafka-publisher/testing")
    assert.deepStrictEqual(loaded, [], why)
  })

  // an entry point added later is held to the same rule unless it is a driver's
  const others = Object.keys(exportsOfPackage)
    .filter((subpath) => ![".", "./testing", "./kafkajs", "./platformatic", "./package.json"].includes(subpath))
    .map((subpath) => `effect-kafka-publisher${subpath.slice(1)}`)
  it.each(others)("%s loads no Kafka client", async (entry) => {
    const { loaded, why } = await clientsLoadedBy(entry)
    assert.deepStrictEqual(loaded, [], why)
  })

  it("effect-kafka-publisher/kafkajs loads kafkajs and not @platformatic/kafka", async () => {
    const { loaded, why } = await clientsLoadedBy("effect-kafka-publisher/kafkajs")
    assert.include(loaded, "kafkajs")
    assert.notInclude(loaded, "@platformatic/kafka", why)
  })

  it("effect-kafka-publisher/platformatic loads @platformatic/kafka and neither kafkajs nor kafkajs-snappy", async () => {
    const { loaded, why } = await clientsLoadedBy("effect-kafka-publisher/platformatic")
    assert.deepStrictEqual(loaded, ["@platformatic/kafka"], why)
  })
})
