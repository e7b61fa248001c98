/** Starts the workflow-events example as its own process and talks to it over real HTTP. */

import { freePort } from "./freePort.ts"
import { startExample, waitForOutput } from "./runExample.ts"

export const startWorkflowService = async (env: Record<string, string | undefined>) => {
  const port = await freePort()
  const run = startExample("examples/workflow-events/main.ts", { ...env, PORT: String(port) })
  await waitForOutput(run, (out, err) => `${out}${err}`.includes("Listening on"))
  const base = `http://127.0.0.1:${port}`
  const trigger = (workflowId: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}/workflows/${workflowId}/trigger`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body)
    })
  return { run, base, trigger, health: () => fetch(`${base}/health`) }
}

export const validBody = {
  source: "api",
  payload: { orderId: "o-1" },
  metadata: { environment: "staging", triggeredBy: "test" }
}
