// Shared by the redrive unit and integration tests: a FakeKafka source, and the counts of a summary.
import type { Redrive } from "effect-kafka-publisher"
import type { FakeKafka } from "effect-kafka-publisher/testing"

/** A redrive source on the fake broker's topics. */
export const fakeSource = (fake: FakeKafka.FakeKafkaShape): Redrive.Source => ({
  read: (topic) => fake.records(topic)
})

/** The counts of a summary, skipped in total, for assertions and the printed figures. */
export const counts = (s: Redrive.Summary) => ({
  read: s.read,
  sent: s.sent,
  deadLetteredAgain: s.deadLetteredAgain,
  failed: s.failed,
  skipped: Object.values(s.skipped).reduce((n, k) => n + (k ?? 0), 0)
})
