/**
 * Progress of a long read for the command line: on a terminal one line on stderr, rewritten in place (`\r`)
 * with the records read, the rate, the time left and a bar; elsewhere (a log, a pipe) a plain line every
 * `interval`. stdout is never touched, so `--json` output stays one document.
 *
 * @module
 */
import type { Progress } from "../reader/TopicReader.ts"

/** Where and how progress is shown. */
export interface Options {
  /** What is read, e.g. "reading orders". */
  readonly label: string
  /** A terminal: rewrite one line; otherwise print plain lines. */
  readonly tty: boolean
  /** Writes to stderr. */
  readonly write: (text: string) => void
  /** Plain lines at most this often, in ms (a terminal line: at most every 100 ms). */
  readonly intervalMs: number
  /** The clock, in ms. */
  readonly now: () => number
}

/** Shows progress: `update` after each batch, `done` at the end. */
export interface Reporter {
  /** A new figure. */
  readonly update: (progress: Progress) => void
  /** The read ended: a terminal line is finished with a newline. */
  readonly done: () => void
}

const barWidth = 20

/** One progress line: "reading orders: 1200/5000 records, 400/s, 10s left [#####...............]". */
export const line = (label: string, progress: Progress, elapsedMs: number, bar: boolean): string => {
  const rate = elapsedMs > 0 ? Math.round((progress.read * 1000) / elapsedMs) : 0
  const known = progress.total > 0
  const left = known && rate > 0 ? `, ${Math.ceil(Math.max(0, progress.total - progress.read) / rate)}s left` : ""
  const of = known ? `/${progress.total}` : ""
  const filled = known ? Math.min(barWidth, Math.floor((progress.read / progress.total) * barWidth)) : 0
  const drawn = bar && known ? ` [${"#".repeat(filled)}${".".repeat(barWidth - filled)}]` : ""
  return `${label}: ${progress.read}${of} records, ${rate}/s${left}${drawn}`
}

/** A reporter for the options. */
export const make = (options: Options): Reporter => {
  const started = options.now()
  const every = options.tty ? 100 : options.intervalMs
  let last = started
  let shown = false
  return {
    update: (progress) => {
      const now = options.now()
      if (now - last < every) return
      last = now
      shown = true
      const text = line(options.label, progress, now - started, options.tty)
      options.write(options.tty ? `\r${text}\u001b[K` : `${text}\n`)
    },
    done: () => {
      if (options.tty && shown) options.write("\n")
    }
  }
}
