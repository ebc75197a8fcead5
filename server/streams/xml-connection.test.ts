/**
 * XmlConnection output: what a peer reads when the broker writes many stanzas in one tick
 * (coalesced into few writes), in order, complete before a stream error and the closing tag, and
 * the unread-output limit still closing a stream whose peer does not read.
 * References: RFC 6120 §4.4 (closing a stream), §4.9 (stream errors), §10.1 (in-order
 * processing), §13.12 (limits).
 */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import { Element } from "ltx";
import { silentLogger } from "../observability/logger.ts";
import { createMetrics } from "../observability/metrics.ts";
import { XmlConnection } from "./xml-connection.ts";

/** A loopback TCP pair: the broker's end wrapped in an XmlConnection, and the raw peer socket. */
async function connectionPair(
  limits: { maxWriteBuffer?: number } = {},
): Promise<{ conn: XmlConnection; peer: net.Socket; close(): void }> {
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once("connection", resolve));
  const { port } = server.address() as net.AddressInfo;
  const peer = net.connect({ port, host: "127.0.0.1" });
  const socket = await accepted;
  const conn = new XmlConnection(socket, {
    id: "test",
    secure: false,
    contentNamespace: "jabber:client",
    limits: { maxStanzaBytes: 65_536, maxDepth: 32, bytesPerSecond: 1_000_000, ...limits },
    log: silentLogger(),
    metrics: createMetrics({ defaultMetrics: false }),
  });
  conn.start({ onHeader() {}, onElement() {}, onClosed() {} });
  return {
    conn,
    peer,
    close() {
      peer.destroy();
      server.close();
    },
  };
}

/** Everything the peer reads until the broker ends the connection, and how many reads it took. */
function readAll(peer: net.Socket): Promise<{ text: string; reads: number }> {
  return new Promise((resolve) => {
    let text = "";
    let reads = 0;
    peer.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
      reads++;
    });
    peer.on("end", () => resolve({ text, reads }));
    peer.on("error", () => resolve({ text, reads }));
  });
}

const message = (n: number) =>
  new Element("message", { to: "bob@localhost", id: `m${n}`, type: "chat" }).c("body").t(`hello ${n}`).root();

test("stanzas written in one tick arrive complete, in order and in few reads, before the stream error and the close", async () => {
  const { conn, peer, close } = await connectionPair();
  try {
    const received = readAll(peer);
    conn.sendHeader({ from: "localhost", id: "s1" });
    for (let n = 0; n < 1000; n++) assert.ok(conn.send(message(n)));
    // RFC 6120 §4.9: the error, then the closing tag, after everything written before it.
    conn.streamError("policy-violation", "test");
    const { text, reads } = await received;
    const ids = [...text.matchAll(/<message [^>]*id="(m\d+)"/g)].map((m) => m[1]);
    assert.deepEqual(
      ids,
      Array.from({ length: 1000 }, (_, n) => `m${n}`),
    );
    const lastMessage = text.lastIndexOf("</message>");
    const error = text.indexOf("<policy-violation");
    assert.ok(error > lastMessage, "the stream error comes after the last stanza");
    assert.ok(text.trimEnd().endsWith("</stream:stream>"), "the closing tag is last");
    // One tick's output is one write; the kernel may still split it, but not into a read per stanza.
    assert.ok(reads < 100, `1,000 stanzas took ${reads} reads`);
  } finally {
    close();
  }
});

test("a peer that does not read is disconnected at the unread-output limit, even within one tick", async () => {
  const { conn, peer, close } = await connectionPair({ maxWriteBuffer: 64 * 1024 });
  try {
    peer.pause();
    conn.sendHeader({ from: "localhost", id: "s2" });
    let accepted = 0;
    const big = "x".repeat(1000);
    // All in one tick: nothing reaches the socket before the end of it, so the limit must count
    // what is still waiting to be written.
    for (let n = 0; n < 10_000; n++) {
      if (!conn.send(new Element("message", { id: `b${n}` }).c("body").t(big).root())) break;
      accepted++;
    }
    assert.ok(accepted < 100, `the stream took ${accepted} KB before closing at 64 KB`);
    assert.equal(conn.isOpen, false);
    const received = readAll(peer);
    peer.resume();
    const { text } = await received;
    assert.match(text, /<policy-violation/);
    assert.ok(text.trimEnd().endsWith("</stream:stream>"));
  } finally {
    close();
  }
});
