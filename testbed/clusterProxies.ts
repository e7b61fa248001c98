/**
 * The proxies of `startCluster({ proxy: true })`: one toxiproxy server, and per node a proxy in front of its
 * CLIENT listener; with three nodes also in front of its REPLICATION (inter-broker) and controller listeners, so a
 * node can be cut off from its peers while clients still reach it (or the other way round).
 *
 * @module
 */
import type { ProxiedListeners } from "./brokerConfig.ts"
import { freePorts } from "./ports.ts"
import { startToxiproxy, type ToxicProxy, type Toxiproxy } from "./toxiproxy.ts"

/** One node's proxies and the listener ports they forward to. */
export interface ProxiedNode {
  readonly client: ToxicProxy
  readonly replication: ToxicProxy | undefined
  readonly controller: ToxicProxy | undefined
  readonly listeners: ProxiedListeners
}

/** The proxies by node id, with the server that runs them. */
export type ClusterProxies = Map<number, ProxiedNode> & { readonly toxiproxy: Toxiproxy }

/** Starts toxiproxy and creates the proxies for these nodes (before the brokers start: a proxy connects lazily). */
export const startProxies = async (
  nodes: ReadonlyArray<{ readonly id: number; readonly controllerPort: number }>
): Promise<ClusterProxies> => {
  const toxiproxy = await startToxiproxy()
  const many = nodes.length > 1
  const map = new Map<number, ProxiedNode>()
  try {
    for (const node of nodes) {
      const [clientPort, replicationPort] = (await freePorts(2)) as [number, number]
      const client = await toxiproxy.proxy(`node-${node.id}-client`, clientPort)
      const replication = many ? await toxiproxy.proxy(`node-${node.id}-replication`, replicationPort) : undefined
      const controller = many ? await toxiproxy.proxy(`node-${node.id}-controller`, node.controllerPort) : undefined
      map.set(node.id, {
        client,
        replication,
        controller,
        listeners: {
          clientPort,
          clientProxy: client.listen,
          replicationPort: many ? replicationPort : undefined,
          replicationProxy: replication?.listen
        }
      })
    }
  } catch (error) {
    await toxiproxy.stop()
    throw error
  }
  return Object.assign(map, { toxiproxy })
}
