/**
 * Crash recovery's check against the broker: which of a dead relay's in-flight event ids are already in
 * their topic, read back with `TopicReader` (by the `eventId` header every relayed record carries). It
 * reads the topic up to its current end, so its cost grows with the topic: fine for the batch or two of a
 * takeover on topics kept short by retention; a very large topic wants a lookup that reads only each
 * partition's tail.
 *
 * @module
 */
import { Effect } from "effect"
import * as TopicReader from "../reader/TopicReader.ts"
import { eventIdHeader } from "./Outbox.ts"
import type { Lookup } from "./OutboxRelay.ts"

const decoder = new TextDecoder()

/** A `Lookup` for `OutboxRelay` that reads the topic back from the brokers in `connection`. */
export const topicLookup =
  (connection: TopicReader.ConnectionOptions): Lookup =>
  (topic, eventIds) =>
    Effect.map(TopicReader.readAll({ ...connection, topic }), (records) => {
      const wanted = new Set(eventIds)
      const found = new Set<string>()
      for (const record of records) {
        const header = record.headers[eventIdHeader]
        const id = header === undefined ? undefined : decoder.decode(header)
        if (id !== undefined && wanted.has(id)) found.add(id)
      }
      return found
    })
