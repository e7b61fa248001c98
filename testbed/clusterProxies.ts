/**
 * The proxies of `startCluster({ proxy: true })`: one toxiproxy server, and per node a proxy in front of its
 * CLIENT listener; with three nodes also in front of its REPLICATION (inter-broker) listener, and one per link from a
 * node to each controller, so a
 * node can be cut off from its peers while clients still reach it (or the other way round).
 *
 * @module
 */
import type { ProxiedListeners } from "./brokerConfig.ts"
import { startToxiproxy, type ToxicProxy, type Toxiproxy } from "./toxiproxy.ts"

/** One node's proxies and the listener ports they forward to. */
export interface ProxiedNode {
  readonly client: ToxicProxy
  readonly replication: ToxicProxy | undefined
  /**
   * This node's links to each controller (by node id, itself included), 3 nodes only: every node names its own
   * links in its quorum voters, so one node can be cut off from the controllers without touching the others.
   */
  readonly controllerLinks: ReadonlyMap<number, ToxicProxy>
  /**
   * 3 nodes only: in front of this node's CONTROLLER listener, its advertised controller endpoint. A quorum leader's
   * followers fetch from there (KIP-853 leader endpoints), not through their links: down it too to cut the node off.
   */
  readonly controller: ToxicProxy | undefined
  readonly listeners: ProxiedListeners
}

/** The proxies by node id, with the server that runs them. */
export type ClusterProxies = Map<number, ProxiedNode> & { readonly toxiproxy: Toxiproxy }

/** How many ports `startProxies` takes for `nodes` nodes (the API, listeners and proxies). */
export const proxyPortCount = (nodes: number): number => 1 + (nodes > 1 ? nodes * (6 + nodes) : 2)

/**
 * Starts toxiproxy and creates the proxies for these nodes (before the brokers start: a proxy connects lazily).
 * `ports` (`proxyPortCount` of them) come from the same `freePorts` call as the brokers' own, so none collide.
 */
export const startProxies = async (
  nodes: ReadonlyArray<{ readonly id: number; readonly controllerPort: number }>,
  ports: ReadonlyArray<number>
): Promise<ClusterProxies> => {
  const free = [...ports]
  const take = (): number => {
    const port = free.shift()
    if (port === undefined) throw new Error("startProxies: not enough ports")
    return port
  }
  const toxiproxy = await startToxiproxy({ port: take() })
  const many = nodes.length > 1
  const map = new Map<number, ProxiedNode>()
  try {
    for (const node of nodes) {
      const clientPort = take()
      const client = await toxiproxy.proxy(`node-${node.id}-client`, clientPort, take())
      const replicationPort = many ? take() : undefined
      const replication =
        replicationPort === undefined
          ? undefined
          : await toxiproxy.proxy(`node-${node.id}-replication`, replicationPort, take())
      const controllerListen = many ? take() : undefined
      const controller =
        controllerListen === undefined
          ? undefined
          : await toxiproxy.proxy(`node-${node.id}-controller`, node.controllerPort, controllerListen)
      const controllerLinks = new Map<number, ToxicProxy>()
      for (const target of many ? nodes : [])
        controllerLinks.set(
          target.id,
          await toxiproxy.proxy(`node-${node.id}-to-${target.id}-controller`, target.controllerPort, take())
        )
      map.set(node.id, {
        client,
        replication,
        controllerLinks,
        controller,
        listeners: {
          clientPort,
          clientProxy: client.listen,
          replicationPort,
          replicationProxy: replication?.listen,
          controllerProxy: controller?.listen
        }
      })
    }
  } catch (error) {
    await toxiproxy.stop()
    throw error
  }
  return Object.assign(map, { toxiproxy })
}
