// A real PostgreSQL server for tests: the system's binaries (Debian's `postgresql` package: initdb, pg_ctl,
// postgres), a fresh cluster in a temporary directory, listening on a free loopback port, trust auth for a
// `test` user plus a password user (`app` / `secret`) for bad-credential tests. Postgres refuses to run as
// root, so as root the server runs as the `postgres` system user.
//
//   const pg = await startPostgres()      // pg.url = postgres://app:secret@127.0.0.1:<port>/outbox
//   await pg.restart(); await pg.stop()
import { execFileSync, spawnSync } from "node:child_process"
import { chmodSync, chownSync, existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { freePorts } from "./ports.ts"

/** Where initdb is, or undefined when Postgres is not installed. */
export const findPostgresBin = (): string | undefined => {
  const which = spawnSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" })
  const found = which.status === 0 ? which.stdout.trim() : ""
  // /usr/local/bin may hold links to a few tools only: the real directory has psql and pg_ctl beside initdb
  if (found !== "") return path.dirname(realpathSync(found))
  for (const version of ["17", "16", "15", "14"]) {
    const dir = `/usr/lib/postgresql/${version}/bin`
    if (existsSync(path.join(dir, "initdb"))) return dir
  }
  return undefined
}

/** Why no Postgres can be started here, or undefined. */
export const postgresUnavailable = (): string | undefined =>
  findPostgresBin() === undefined ? "PostgreSQL (initdb) not installed: apt-get install postgresql" : undefined

/** A running server. */
export interface Postgres {
  /** `postgres://app:secret@127.0.0.1:<port>/outbox`. */
  readonly url: string
  readonly port: number
  /** Stops (fast mode) and starts the server again on the same port and data. */
  readonly restart: () => Promise<void>
  /** Stops the server and deletes its directory. */
  readonly stop: () => Promise<void>
}

const asRoot = typeof process.getuid === "function" && process.getuid() === 0

/** Runs a Postgres binary, as the `postgres` user when we are root. */
const pgRun = (bin: string, tool: string, args: ReadonlyArray<string>) =>
  asRoot
    ? execFileSync("runuser", ["-u", "postgres", "--", path.join(bin, tool), ...args], { stdio: "pipe" })
    : execFileSync(path.join(bin, tool), [...args], { stdio: "pipe" })

/** Initialises a cluster in a temporary directory and starts it on a free loopback port. */
export const startPostgres = async (): Promise<Postgres> => {
  const bin = findPostgresBin()
  if (bin === undefined) throw new Error("PostgreSQL (initdb) not installed")
  const dir = mkdtempSync(path.join(tmpdir(), "pg-testbed-"))
  const data = path.join(dir, "data")
  if (asRoot) {
    chmodSync(dir, 0o755)
    const ids = execFileSync("id", ["-u", "postgres"]).toString().trim()
    const gid = execFileSync("id", ["-g", "postgres"]).toString().trim()
    chownSync(dir, Number(ids), Number(gid))
  }
  const [port] = await freePorts(1)
  pgRun(bin, "initdb", ["-D", data, "-U", "test", "--auth=trust", "-E", "UTF8", "--no-sync"])
  const conf = [
    `port = ${port}`,
    "listen_addresses = '127.0.0.1'",
    `unix_socket_directories = '${dir}'`,
    "fsync = off",
    "max_connections = 50"
  ].join("\n")
  const confFile = path.join(data, "postgresql.conf")
  execFileSync("sh", ["-c", `cat >> '${confFile}'`], { input: `\n${conf}\n` })
  // the password user goes through md5/scram: trust only for `test`
  writeFileSync(
    path.join(dir, "pg_hba.extra"),
    "host all test 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\nlocal all all trust\n"
  )
  execFileSync("sh", ["-c", `cp '${path.join(dir, "pg_hba.extra")}' '${path.join(data, "pg_hba.conf")}'`])
  if (asRoot) execFileSync("chown", ["postgres:postgres", path.join(data, "pg_hba.conf")])
  const start = () => pgRun(bin, "pg_ctl", ["-D", data, "-l", path.join(dir, "log"), "-w", "-t", "30", "start"])
  const halt = () => pgRun(bin, "pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"])
  try {
    start()
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  const psql = (sql: string) =>
    execFileSync(
      path.join(bin, "psql"),
      ["-h", "127.0.0.1", "-p", String(port), "-U", "test", "-d", "postgres", "-c", sql],
      {
        stdio: "pipe"
      }
    )
  psql("CREATE ROLE app LOGIN PASSWORD 'secret' SUPERUSER")
  psql("CREATE DATABASE outbox OWNER app")
  return {
    url: `postgres://app:secret@127.0.0.1:${port}/outbox`,
    port: port!,
    restart: async () => {
      halt()
      start()
    },
    stop: async () => {
      try {
        halt()
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
