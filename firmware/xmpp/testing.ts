/**
 * Test helper: a loopback TCP relay between a device and its server, so a test can make the
 * network fail the way it does in the field — every connection cut without a closing handshake
 * (`cut`), or gone silent while TCP stays up (`freeze`) — without touching either end.
 * References: XEP-0198 §6 (what resumption is for), RFC 6120 §4.6 (detecting dead connections).
 */
import net from "node:net";

export interface TcpRelay {
  /** The loopback port devices connect to. */
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /**
   * Destroys every relayed connection at once: both sides see the TCP connection end without a
   * </stream:stream>. (Plain destroy(): resetAndDestroy() left libuv spinning on Node 20.)
   */
  cut(): void;
  /** Stops forwarding in both directions on the current connections; they stay open. */
  freeze(): void;
  close(): Promise<void>;
}

export async function startTcpRelay(target: { host?: string; port: number }): Promise<TcpRelay> {
  const pairs = new Set<{ a: net.Socket; b: net.Socket; frozen: boolean }>();
  let accepted = 0;
  const server = net.createServer((a) => {
    accepted++;
    const b = net.connect({ host: target.host ?? "127.0.0.1", port: target.port });
    const pair = { a, b, frozen: false };
    pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket) =>
      from.on("data", (chunk) => {
        if (!pair.frozen) to.write(chunk);
      });
    forward(a, b);
    forward(b, a);
    const end = () => {
      pairs.delete(pair);
      a.destroy();
      b.destroy();
    };
    for (const s of [a, b]) {
      s.on("error", end);
      s.on("close", end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const relay: TcpRelay = {
    port,
    get accepted() {
      return accepted;
    },
    cut() {
      for (const { a, b } of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    freeze() {
      for (const pair of pairs) pair.frozen = true;
    },
    async close() {
      relay.cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return relay;
}
