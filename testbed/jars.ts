// The broker's jars come from Maven Central (no npm or Debian package ships Kafka, no Docker here):
// `mvn dependency:copy-dependencies` on testbed/kafka-<line>/pom.xml, cached in .kafka/libs-<version>/.
import { execFile, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { configDir, type KafkaVersion, libsDir } from "./layout.ts"
import { killOnExit } from "./processes.ts"

const execFileAsync = promisify(execFile)

const markerName = ".complete"

/** `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` from PATH. */
export const javaCommand = (): string =>
  process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, "bin", "java") : "java"

/** Java's major version (8, 11, 17, ...), or undefined when `java` cannot run. */
export const javaMajorVersion = (java = javaCommand()): number | undefined => {
  const result = spawnSync(java, ["-version"], { encoding: "utf8" })
  if (result.error !== undefined || result.status !== 0) return undefined
  // `java -version` prints to stderr, e.g. `openjdk version "17.0.15"` or `java version "1.8.0_392"`
  const match = /version "(?:1\.)?(\d+)/.exec(result.stderr)
  return match === null ? undefined : Number(match[1])
}

const commandRuns = (command: string, args: ReadonlyArray<string>): boolean => {
  const result = spawnSync(command, args, { stdio: "ignore" })
  return result.error === undefined && result.status === 0
}

// The POM's hash goes in the marker: editing the POM (e.g. adding a jar) invalidates the cache.
const pomHash = (version: KafkaVersion): string =>
  createHash("sha256")
    .update(fs.readFileSync(path.join(configDir(version), "pom.xml")))
    .digest("hex")

/** True when .kafka/libs-<version> holds a complete download of the current POM. */
export const jarsCached = (version: KafkaVersion): boolean => {
  try {
    return fs.readFileSync(path.join(libsDir(version), markerName), "utf8").trim() === pomHash(version)
  } catch {
    return false
  }
}

/**
 * Why a real broker cannot run here, or undefined when it can: Java (17+ for Kafka 4) must run, and Maven
 * must run unless the jars are already cached.
 */
export const toolchainProblem = (version: KafkaVersion): string | undefined => {
  const java = javaMajorVersion()
  if (java === undefined) return `\`${javaCommand()}\` does not run (the broker is a JVM: install OpenJDK 17)`
  if (version.startsWith("4.") && java < 17) return `Kafka ${version} needs Java 17 or newer, found Java ${java}`
  if (!jarsCached(version) && !commandRuns("mvn", ["-v"]))
    return `\`mvn\` was not found on PATH and ${libsDir(version)} holds no downloaded jars (Maven fetches them)`
  return undefined
}

/** Deletes `<dir>.partial-<pid>` directories of downloads whose process is gone (interrupted, crashed). */
const removeAbandonedDownloads = (dir: string): void => {
  const prefix = `${path.basename(dir)}.partial-`
  let names: Array<string> = []
  try {
    names = fs.readdirSync(path.dirname(dir)).filter((name) => name.startsWith(prefix))
  } catch {
    return
  }
  for (const name of names) {
    // ours is an earlier failed attempt; another process's is abandoned when that process is gone
    const pid = name.slice(prefix.length)
    if (pid === String(process.pid) || !fs.existsSync(`/proc/${pid}`))
      fs.rmSync(path.join(path.dirname(dir), name), { recursive: true, force: true })
  }
}

/**
 * The directory of the broker's jars (for `java -cp "<dir>/*"`), downloading them on first use.
 * A download goes to a temporary directory that is renamed only when complete, so an interrupted
 * download is never mistaken for a cache.
 */
export const ensureJars = async (version: KafkaVersion): Promise<string> => {
  const dir = libsDir(version)
  if (jarsCached(version)) return dir
  removeAbandonedDownloads(dir)
  const partial = `${dir}.partial-${process.pid}`
  const pom = path.join(configDir(version), "pom.xml")
  const args = ["-q", "-B", "-ntp", "-f", pom]
  args.push("dependency:copy-dependencies", "-DincludeScope=runtime", `-DoutputDirectory=${partial}`)
  // an interrupted test run must not leave Maven downloading in the background
  const child = execFileAsync("mvn", args, { maxBuffer: 16 * 1024 * 1024 })
  const unregister = killOnExit(() => child.child.kill("SIGKILL"))
  try {
    await child
  } catch (cause) {
    fs.rmSync(partial, { recursive: true, force: true })
    const { stdout = "", stderr = "" } = cause as { stdout?: string; stderr?: string }
    throw new Error(`mvn could not resolve the Kafka ${version} jars:\n${stdout}${stderr}`, { cause })
  } finally {
    unregister()
  }
  fs.writeFileSync(path.join(partial, markerName), `${pomHash(version)}\n`)
  fs.rmSync(dir, { recursive: true, force: true })
  fs.renameSync(partial, dir)
  return dir
}
