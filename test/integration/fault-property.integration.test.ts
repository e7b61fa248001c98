// Issue 12 item 4: property-based fault sequences on a real broker. fast-check picks a load (driver, Batcher,
// fibers, rate) and 1-3 faults (toxics on the client link, SIGSTOP, kill -9 + restart); every run must keep the
// network-fault invariants: 0 lost, 0 unmarked duplicates, 0 silently written, no publish past its bound, no
// defect; and the same driver's pipelined sends beside them theirs: order per key, nothing twice or ahead of a failure. The seed is printed; FAULT_SEED (and FAULT_PATH, printed with a failure) replay it. CI runs 3 cases;
// `npm run soak:faults` runs many (FAULT_MINUTES, FAULT_RUNS). Shrinking is off: a failing case is reported as is.
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import { kafkaVersion } from "./broker.ts"
import {
  describeLoad,
  describeStep,
  type FaultCase,
  faultCase,
  faultRunSettings,
  makeTally,
  plannedMs,
  runFaultCase
} from "./faultProperty.ts"
import { assertFaultInvariants, describeWithToxiproxy } from "./networkFaults.ts"
import { ownCluster, quickRestart } from "./ownCluster.ts"
import { assertSendInvariants, sendSummary } from "./pipelinedSends.ts"
import { summary } from "./reliabilityCounts.ts"

const settings = faultRunSettings(3)
/** CI: 3 short cases. A soak: its minutes, plus one case's worst time to finish the last one. */
const timeoutMs = Number.isFinite(settings.deadline)
  ? settings.deadline - Date.now() + 120_000
  : Math.max(settings.numRuns, 1) * 60_000

describeWithToxiproxy("fault sequences (property-based, toxiproxy + one broker)", "client <-> broker", () => {
  const cluster = ownCluster({ nodes: 1, proxy: true, extraProps: quickRestart })

  it(
    "every fault sequence keeps the invariants: 0 lost, 0 unmarked duplicates, 0 silently written, bounded publishes",
    async () => {
      const replay = `FAULT_SEED=${settings.seed}${settings.path === undefined ? "" : ` FAULT_PATH=${settings.path}`}${settings.long ? " FAULT_LONG=1" : ""}`
      console.log(`fault property, Kafka ${kafkaVersion()}: seed ${settings.seed} (replay: ${replay})`)
      const tally = makeTally()
      const began = Date.now()
      const property = fc.asyncProperty(faultCase(settings.long), async (c: FaultCase) => {
        if (Date.now() > settings.deadline) return // time-boxed soak: the rest pass at once
        const run = tally.runs() + 1
        const steps = c.steps.map(describeStep).join(", ")
        const name = `faultprop-${Date.now()}`
        const result = await Effect.runPromise(runFaultCase(cluster(), c, name))
        console.log(
          `${summary(`run ${run} [${steps}] ${describeLoad(c.load)}, Kafka ${kafkaVersion()}`, result.counts)}, defects ${result.defects}, longest publish ${result.longestMs} ms, run ${(result.elapsedMs / 1000).toFixed(1)} s (faults planned ${(plannedMs(c.steps) / 1000).toFixed(1)} s)`
        )
        console.log(sendSummary(`run ${run} [${steps}] ${c.load.driver} sends`, result.sends))
        tally.add(c, result)
        assertFaultInvariants(`run ${run}`, result.counts, result.longestMs)
        assertSendInvariants(`run ${run}, ${c.load.driver} sends`, result.sends)
        assert.strictEqual(result.defects, 0, `run ${run}: publishes ended in a defect`)
      })
      try {
        const details = await fc.check(property, {
          seed: settings.seed,
          numRuns: settings.numRuns,
          endOnFailure: true, // no shrinking: each try is a real run; the failing case is reported as generated
          includeErrorInReport: true,
          ...(settings.path === undefined ? {} : { path: settings.path })
        })
        if (details.failed) {
          const long = settings.long ? " FAULT_LONG=1" : ""
          const again = `FAULT_SEED=${details.seed} FAULT_PATH=${details.counterexamplePath} FAULT_RUNS=1${long}`
          throw new Error(`replay this case: ${again}\n${fc.defaultReportMessage(details)}`)
        }
      } finally {
        console.log(
          `fault property, Kafka ${kafkaVersion()}, seed ${settings.seed}, ${((Date.now() - began) / 1000).toFixed(0)} s: ${tally.line()}`
        )
      }
    },
    timeoutMs
  )
})
