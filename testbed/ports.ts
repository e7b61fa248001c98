// Free TCP ports on 127.0.0.1, chosen by the kernel (listen on port 0, read the port, close).
// Between the close and the broker's bind another process could take the port; on a test machine that is rare,
// and the broker then fails fast with "Address already in use" in its log.
import * as net from "node:net"

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** `count` distinct free ports. */
export const freePorts = async (count: number): Promise<Array<number>> => {
  const ports = new Set<number>()
  while (ports.size < count) ports.add(await freePort())
  return [...ports]
}
