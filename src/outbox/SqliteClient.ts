/**
 * The embedded store: Node's built-in `node:sqlite` (no server, no native addon to build) wrapped as an
 * `effect/sql` `SqlClient`, so the outbox and the application share one client and one transaction.
 *
 * Why `node:sqlite` and not an Effect driver: `@effect/sql-sqlite-node` has no release for Effect 4 (its
 * newest are 4.0.0 betas, whose paths 4.1.0 no longer has), and it needs `better-sqlite3`, a native build.
 * One connection, shared through a semaphore (`SqlClient.makeSqliteAcquirers`): a transaction holds it.
 *
 * @module
 */
import { DatabaseSync, type SQLInputValue } from "node:sqlite"
import { Effect, Layer, type Scope, Semaphore, Stream } from "effect"
import { Reactivity } from "effect/reactivity"
import { SqlClient, type SqlConnection, SqlError, Statement } from "effect/sql"

type Connection = SqlConnection.Connection

/** What `make` takes. */
export interface Options {
  /** A file path, or `:memory:` (the default). */
  readonly filename?: string | undefined
}

const failure = (cause: unknown, operation: string) =>
  new SqlError.SqlError({
    reason: SqlError.classifySqliteError(cause, { message: `SQLite ${operation} failed`, operation })
  })

const connectionOf = (db: DatabaseSync): Connection => {
  const run = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.try({
      try: () => {
        const statement = db.prepare(sql)
        // a statement that returns no columns (INSERT, UPDATE, BEGIN) is run, not iterated
        if (statement.columns().length === 0) {
          statement.run(...(params as Array<SQLInputValue>))
          return [] as Array<Record<string, unknown>>
        }
        return statement.all(...(params as Array<SQLInputValue>)) as Array<Record<string, unknown>>
      },
      catch: (cause) => failure(cause, "execute")
    })
  const values = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.map(run(sql, params), (rows) => rows.map((row) => Object.values(row)))
  const execute: Connection["execute"] = (sql, params, transformRows) =>
    transformRows ? Effect.map(run(sql, params), transformRows) : run(sql, params)
  return {
    execute,
    executeRaw: run,
    executeUnprepared: execute,
    executeValues: values,
    executeValuesUnprepared: values,
    executeStream: (sql, params, transformRows) => Stream.fromIterableEffect(execute(sql, params, transformRows))
  }
}

/** A scoped `SqlClient` over one `node:sqlite` database, closed with the scope. */
export const make = (
  options: Options = {}
): Effect.Effect<SqlClient.SqlClient, SqlError.SqlError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function* () {
    const db = yield* Effect.acquireRelease(
      Effect.try({
        try: () => new DatabaseSync(options.filename ?? ":memory:"),
        catch: (cause) => failure(cause, "open")
      }),
      (db) => Effect.sync(() => db.close())
    )
    const connection = connectionOf(db)
    const semaphore = yield* Semaphore.make(1)
    const acquirers = SqlClient.makeSqliteAcquirers({
      connection: Effect.succeed(connection),
      semaphore,
      isTransaction: () => db.isTransaction
    })
    return yield* SqlClient.make({
      ...acquirers,
      compiler: Statement.makeCompilerSqlite(),
      driver: "node-sqlite",
      spanAttributes: [["db.system.name", "sqlite"]]
    })
  })

/** The `SqlClient` layer over `node:sqlite` (`:memory:` unless a file is given). */
export const layer = (options: Options = {}): Layer.Layer<SqlClient.SqlClient, SqlError.SqlError> =>
  Layer.effect(SqlClient.SqlClient, make(options)).pipe(Layer.provide(Reactivity.layer))
