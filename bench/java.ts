/** The Java client's `ProducerPerformance` (kafka-producer-perf-test), run from the test bed's jars. */
import { execFile } from "node:child_process"
import path from "node:path"
import { promisify } from "node:util"
import { kafkaVersionFromEnv } from "../testbed/KafkaCluster.ts"
import { libsDir } from "../testbed/layout.ts"

const execFileAsync = promisify(execFile)

/** What ProducerPerformance reports in its last line. */
export interface JavaRun {
  readonly records: number
  readonly recordsPerSecond: number
  readonly mbPerSecond: number
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number }
  /** The whole process, JVM start included. */
  readonly wallMs: number
}

/** Runs ProducerPerformance with `args` (after the class name) and parses its summary line. */
export const producerPerformance = async (args: ReadonlyArray<string>): Promise<JavaRun> => {
  const version = kafkaVersionFromEnv()
  const logConfig = version.startsWith("3.")
    ? [`-Dlog4j.configuration=file:${path.resolve("bench/tools-log4j.properties")}`]
    : [`-Dlog4j2.configurationFile=${path.resolve("bench/tools-log4j2.properties")}`]
  const started = performance.now()
  const { stdout } = await execFileAsync(
    "java",
    [
      "-Xmx512m",
      ...logConfig,
      "-cp",
      path.join(libsDir(version), "*"),
      "org.apache.kafka.tools.ProducerPerformance"
    ].concat(args),
    { maxBuffer: 16 * 1024 * 1024 }
  )
  const wallMs = performance.now() - started
  // "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency, P50 ms 50th, P95 ms 95th, P99 ms 99th, ..."
  const last = stdout.trim().split("\n").at(-1)!
  const m =
    /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), [\d.]+ ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th/.exec(
      last
    )
  if (!m) throw new Error(`cannot read ProducerPerformance output: ${last}`)
  return {
    records: Number(m[1]),
    recordsPerSecond: Number(m[2]),
    mbPerSecond: Number(m[3]),
    latencyMs: { p50: Number(m[5]), p95: Number(m[6]), p99: Number(m[7]), max: Number(m[4]) },
    wallMs
  }
}
