/**
 * Listeners: ephemeral ports, operator-readable bind errors, connection limits, shutdown.
 * References: RFC 6120 §5 (TCP transport), XEP-0368 §3 (direct TLS).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { describe, test } from "node:test";
import tls from "node:tls";
import { silentLogger } from "../observability/logger.ts";
import { issueCertificate } from "./certs.ts";
import { describeListenError, ListenError, listenTcp, listenTls } from "./listen.ts";

const log = silentLogger();

describe("listenTcp", () => {
  test("port 0 binds an ephemeral port and hands over accepted sockets", async () => {
    const accepted: net.Socket[] = [];
    const listener = await listenTcp({
      port: 0,
      host: "127.0.0.1",
      name: "c2s",
      log,
      onConnection: (s) => {
        accepted.push(s);
        s.end("hello");
      },
    });
    assert.ok(listener.port > 0);
    assert.equal((listener.server.address() as net.AddressInfo).port, listener.port);
    const client = net.connect(listener.port, "127.0.0.1");
    const [data] = await once(client, "data");
    assert.equal(String(data), "hello");
    assert.equal(accepted.length, 1);
    await listener.close();
  });

  test("a port in use gives a message naming port, address and listener", async () => {
    const first = await listenTcp({ port: 0, host: "127.0.0.1", name: "c2s", log, onConnection: () => {} });
    await assert.rejects(
      listenTcp({ port: first.port, host: "127.0.0.1", name: "c2s", log, onConnection: () => {} }),
      (err: Error) => {
        assert.ok(err instanceof ListenError);
        assert.equal(err.code, "EADDRINUSE");
        assert.equal(err.message, `port ${first.port} on 127.0.0.1 is already in use (c2s)`);
        return true;
      },
    );
    await first.close();
  });

  test("permission and address errors are described", () => {
    const eacces = Object.assign(new Error("listen EACCES"), { code: "EACCES" });
    assert.equal(
      describeListenError(eacces, 80, "0.0.0.0", "http").message,
      "permission denied to listen on port 80 on 0.0.0.0 (http); ports below 1024 need privileges",
    );
    const notAvail = Object.assign(new Error("listen EADDRNOTAVAIL"), { code: "EADDRNOTAVAIL" });
    assert.equal(
      describeListenError(notAvail, 5222, "10.9.9.9", "c2s").message,
      "address 10.9.9.9 is not available on this machine (c2s, port 5222)",
    );
  });

  test("an unavailable address is refused with a clear message", async () => {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never configured on this machine.
    await assert.rejects(
      listenTcp({ port: 0, host: "192.0.2.1", name: "s2s", log, onConnection: () => {} }),
      {
        name: "ListenError",
        message: /^address 192\.0\.2\.1 is not available on this machine \(s2s/,
      },
    );
  });

  test("maxConnections closes sockets beyond the limit", async () => {
    const held: net.Socket[] = [];
    const listener = await listenTcp({
      port: 0,
      host: "127.0.0.1",
      name: "c2s",
      log,
      maxConnections: 1,
      onConnection: (s) => held.push(s),
    });
    const a = net.connect(listener.port, "127.0.0.1");
    await once(a, "connect");
    while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
    const b = net.connect(listener.port, "127.0.0.1");
    b.on("error", () => {});
    await once(b, "close"); // dropped by the server
    assert.equal(held.length, 1);
    a.destroy();
    await listener.close();
  });

  test("close() destroys connections still open after the grace period", async () => {
    const listener = await listenTcp({
      port: 0,
      host: "127.0.0.1",
      name: "c2s",
      log,
      onConnection: () => {},
    });
    const client = net.connect(listener.port, "127.0.0.1");
    await once(client, "connect");
    const started = Date.now();
    await listener.close(50);
    await once(client, "close");
    assert.ok(Date.now() - started < 2_000);
  });
});

describe("listenTls", () => {
  test("accepts TLS connections and survives failed handshakes", async () => {
    const cert = await issueCertificate({ names: ["example.com"] });
    const accepted: tls.TLSSocket[] = [];
    const listener = await listenTls({
      port: 0,
      host: "127.0.0.1",
      name: "c2s-tls",
      log,
      material: cert,
      alpn: ["xmpp-client"],
      onConnection: (s) => {
        accepted.push(s);
        s.end("ok");
      },
    });
    // A plain-text client (or a scanner) fails the handshake; the listener carries on.
    const plain = net.connect(listener.port, "127.0.0.1");
    plain.on("error", () => {});
    plain.write("<stream:stream>\r\n\r\n");
    await once(plain, "close");

    const client = tls.connect({
      port: listener.port,
      host: "127.0.0.1",
      ca: cert.certPem,
      servername: "example.com",
    });
    const [data] = await once(client, "data");
    assert.equal(String(data), "ok");
    assert.equal(accepted.length, 1);
    assert.equal(accepted[0]!.encrypted, true);
    client.destroy();

    await assert.rejects(
      listenTls({
        port: listener.port,
        host: "127.0.0.1",
        name: "c2s-tls",
        log,
        material: cert,
        onConnection: () => {},
      }),
      { message: `port ${listener.port} on 127.0.0.1 is already in use (c2s-tls)` },
    );
    await listener.close();
  });
});
