/** The typed event of the workflow service and the request body that triggers it. */
import { Schema } from "effect"
import { Topic } from "effect-kafka-publisher"

export const EventType = Schema.Literals(["workflow.triggered", "workflow.completed", "workflow.failed"])
export const Source = Schema.Literals(["api", "scheduler", "webhook"])
export const Environment = Schema.Literals(["development", "staging", "production"])

const NonEmpty = Schema.String.check(Schema.isNonEmpty())

export class WorkflowEvent extends Schema.Class<WorkflowEvent>("WorkflowEvent")({
  eventType: EventType,
  source: Source,
  workflowId: NonEmpty,
  runId: NonEmpty,
  payload: Schema.Record(Schema.String, Schema.Unknown),
  metadata: Schema.Struct({
    environment: Environment,
    triggeredBy: Schema.optional(Schema.String)
  }),
  occurredAt: Schema.String
}) {}

/** POST /workflows/:id/trigger body. */
export class TriggerRequest extends Schema.Class<TriggerRequest>("TriggerRequest")({
  source: Source,
  runId: Schema.optional(NonEmpty),
  payload: Schema.Record(Schema.String, Schema.Unknown),
  metadata: Schema.Struct({
    environment: Environment,
    triggeredBy: Schema.optional(Schema.String)
  })
}) {}

// keyed by workflow: one workflow's events stay in order
export const workflowEvents = Topic.make({
  name: process.env.WORKFLOW_TOPIC ?? "workflow-events",
  schema: WorkflowEvent,
  key: (event) => event.workflowId,
  headers: (event) => ({ eventType: event.eventType, eventId: `${event.workflowId}:${event.runId}` })
})
