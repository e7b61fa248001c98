/** What tests read off an `Exit`. */
import { Exit } from "effect"

/** The typed failure of an exit; throws (failing the test) on a success or an untyped one (a defect). */
export const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error(`expected a failure, got ${JSON.stringify(exit.value)}`)
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (reason?._tag !== "Fail") throw new Error(`expected a typed failure, got ${exit.cause}`)
  return reason.error
}
