import { assert, describe, it } from "@effect/vitest"
import * as Progress from "../../src/bin/progress.ts"

const recorder = (tty: boolean) => {
  let now = 0
  const written: Array<string> = []
  const reporter = Progress.make({
    label: "reading t",
    tty,
    write: (s) => written.push(s),
    intervalMs: 5000,
    now: () => now
  })
  return { reporter, written, at: (ms: number) => (now = ms) }
}

describe("progress", () => {
  it("line: count, rate, time left and bar when the end is known", () => {
    assert.strictEqual(
      Progress.line("reading t", { read: 1000, total: 4000 }, 2000, true),
      "reading t: 1000/4000 records, 500/s, 6s left [#####...............]"
    )
    assert.strictEqual(Progress.line("reading t", { read: 10, total: 0 }, 1000, true), "reading t: 10 records, 10/s")
  })

  it("not a TTY: plain lines, at most one per interval", () => {
    const r = recorder(false)
    for (const ms of [1000, 4000, 5000, 6000, 10_000]) {
      r.at(ms)
      r.reporter.update({ read: ms, total: 20_000 })
    }
    r.reporter.done()
    assert.deepStrictEqual(r.written, [
      "reading t: 5000/20000 records, 1000/s, 15s left\n",
      "reading t: 10000/20000 records, 1000/s, 10s left\n"
    ])
  })

  it("a TTY: one line rewritten with \\r, ended by a newline", () => {
    const r = recorder(true)
    r.at(200)
    r.reporter.update({ read: 100, total: 200 })
    r.reporter.done()
    assert.strictEqual(r.written.length, 2)
    assert.match(r.written[0]!, /^\rreading t: 100\/200 records, 500\/s, 1s left \[#{10}\.{10}\]/)
    assert.strictEqual(r.written[1], "\n")
  })
})
