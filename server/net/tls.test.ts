/**
 * TLS: real handshakes on 127.0.0.1 with generated certificates, SNI and ALPN, the server-side
 * STARTTLS upgrade, and channel-binding data seen identically by both ends.
 * References: RFC 6120 §5.4.3.3, XEP-0368 §3, RFC 6066 §3, RFC 9266 §2, RFC 5929 §4.1.
 */
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, X509Certificate } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import { after, before, describe, test } from "node:test";
import tls from "node:tls";
import forge from "node-forge";
import { silentLogger } from "../observability/logger.ts";
import { createTestCa, type IssuedCertificate, issueCertificate } from "./certs.ts";
import { type Listener, listenTcp, listenTls } from "./listen.ts";
import {
  ALPN_CLIENT,
  channelBindingData,
  createTlsContext,
  endPointHash,
  type SniContexts,
  TlsUpgradeError,
  upgradeToTls,
} from "./tls.ts";

const EXPORTER_LABEL = "EXPORTER-Channel-Binding";

function connectTls(port: number, opts: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ...opts }, () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Reads from a socket until `text` has arrived, then stops reading (as a stream does before STARTTLS). */
function readUntil(socket: net.Socket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = "";
    const onData = (chunk: Buffer): void => {
      got += String(chunk);
      if (!got.includes(text)) return;
      socket.off("data", onData);
      socket.off("end", onEnd);
      resolve(got);
    };
    const onEnd = (): void => reject(new Error(`socket ended before ${JSON.stringify(text)}`));
    socket.on("data", onData);
    socket.once("end", onEnd);
  });
}

function nextData(socket: net.Socket): Promise<string> {
  return once(socket, "data").then(([chunk]) => String(chunk));
}

let main: IssuedCertificate;
let other: IssuedCertificate;
let ca: IssuedCertificate;
let caSigned: IssuedCertificate;
before(async () => {
  [main, other, ca] = await Promise.all([
    issueCertificate({ names: ["example.com", "*.example.com"], xmppAddrs: ["example.com"] }),
    issueCertificate({ names: ["other.example"] }),
    createTestCa(),
  ]);
  caSigned = await issueCertificate({ names: ["signed.example"], ca });
});

describe("direct TLS (XEP-0368)", () => {
  let listener: Listener;
  const accepted: tls.TLSSocket[] = [];
  const sni: SniContexts = new Map();
  before(async () => {
    listener = await listenTls({
      port: 0,
      host: "127.0.0.1",
      name: "c2s-tls",
      log: silentLogger(),
      material: main,
      sni,
      alpn: [ALPN_CLIENT],
      onConnection: (socket) => {
        accepted.push(socket);
        socket.on("data", (d) => socket.write(`echo:${d}`));
      },
    });
  });
  after(() => listener.close(0));

  test("handshake verifies against the generated certificate; TLS 1.3 and ALPN xmpp-client", async () => {
    const client = await connectTls(listener.port, {
      ca: main.certPem,
      servername: "example.com",
      ALPNProtocols: [ALPN_CLIENT],
    });
    assert.equal(client.authorized, true);
    assert.equal(client.getProtocol(), "TLSv1.3");
    assert.equal(client.alpnProtocol, "xmpp-client");
    client.write("<stream>");
    assert.equal(await nextData(client), "echo:<stream>");
    client.destroy();
  });

  test("a component name is covered by the wildcard", async () => {
    const client = await connectTls(listener.port, { ca: main.certPem, servername: "registry.example.com" });
    assert.equal(client.authorized, true);
    client.destroy();
  });

  test("clients without ALPN are accepted", async () => {
    const client = await connectTls(listener.port, { ca: main.certPem, servername: "example.com" });
    assert.equal(client.alpnProtocol, false);
    client.destroy();
  });

  test("TLS 1.1 is refused (RFC 7590)", async () => {
    await assert.rejects(
      connectTls(listener.port, {
        ca: main.certPem,
        servername: "example.com",
        minVersion: "TLSv1",
        maxVersion: "TLSv1.1",
      }),
    );
  });

  test("SNI selects the certificate; unknown names get the default", async () => {
    sni.set("other.example", createTlsContext(other)); // added after start: read per handshake
    const a = await connectTls(listener.port, { ca: other.certPem, servername: "other.example" });
    assert.equal(a.authorized, true);
    assert.equal(a.getPeerX509Certificate()?.subject, "CN=other.example");
    a.destroy();
    const b = await connectTls(listener.port, {
      ca: main.certPem,
      servername: "unknown.test",
      checkServerIdentity: () => undefined,
    });
    assert.equal(b.getPeerX509Certificate()?.subject, "CN=example.com");
    b.destroy();
    sni.set("*.wild.example", createTlsContext(caSigned));
    const c = await connectTls(listener.port, {
      ca: ca.certPem,
      servername: "x.wild.example",
      checkServerIdentity: () => undefined,
    });
    assert.equal(c.authorized, true);
    assert.equal(c.getPeerX509Certificate()?.subject, "CN=signed.example");
    c.destroy();
  });

  test("channel binding: both ends compute the same tls-exporter and tls-server-end-point", async () => {
    const before = accepted.length;
    const client = await connectTls(listener.port, { ca: main.certPem, servername: "example.com" });
    client.write("x");
    await nextData(client); // the server socket exists and is secure
    const server = accepted[before]!;
    const serverExporter = channelBindingData(server, "tls-exporter");
    assert.equal(serverExporter?.length, 32);
    assert.deepEqual(serverExporter, client.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0)));
    assert.deepEqual(channelBindingData(client, "tls-exporter", "client"), serverExporter);

    const der = new X509Certificate(main.certPem).raw;
    const expected = createHash("sha256").update(der).digest();
    assert.deepEqual(channelBindingData(server, "tls-server-end-point"), expected);
    assert.deepEqual(channelBindingData(client, "tls-server-end-point", "client"), expected);
    client.destroy();
  });

  test("channel binding: no tls-exporter on TLS 1.2 (RFC 9266 §3)", async () => {
    const before = accepted.length;
    const client = await connectTls(listener.port, {
      ca: main.certPem,
      servername: "example.com",
      maxVersion: "TLSv1.2",
    });
    assert.equal(client.getProtocol(), "TLSv1.2");
    client.write("x");
    await nextData(client);
    const server = accepted[before]!;
    assert.equal(channelBindingData(server, "tls-exporter"), undefined);
    assert.equal(channelBindingData(server, "tls-server-end-point")?.length, 32);
    client.destroy();
  });
});

describe("STARTTLS upgrade (RFC 6120 §5.4.3.3)", () => {
  let listener: Listener;
  let upgraded: Promise<tls.TLSSocket | Error>;
  let upgradeTimeoutMs = 15_000;
  const context = () => createTlsContext(main);
  before(async () => {
    const ctx = context();
    listener = await listenTcp({
      port: 0,
      host: "127.0.0.1",
      name: "c2s",
      log: silentLogger(),
      onConnection: (socket) => {
        upgraded = (async () => {
          await readUntil(socket, "<starttls/>");
          socket.write("<proceed/>");
          try {
            const secure = await upgradeToTls(socket, {
              material: main,
              context: ctx,
              timeoutMs: upgradeTimeoutMs,
            });
            secure.on("data", (d) => secure.write(`secure:${d}`));
            return secure;
          } catch (err) {
            return err as Error;
          }
        })();
      },
    });
  });
  after(() => listener.close(0));

  async function plainClient(): Promise<net.Socket> {
    const socket = net.connect(listener.port, "127.0.0.1");
    await once(socket, "connect");
    socket.write("<starttls/>");
    assert.equal(await nextData(socket), "<proceed/>");
    return socket;
  }

  test("plain bytes, then TLS on the same connection", async () => {
    upgradeTimeoutMs = 15_000;
    const plain = await plainClient();
    const secure = await connectTls(0, { socket: plain, ca: main.certPem, servername: "example.com" });
    assert.equal(secure.authorized, true);
    assert.equal(secure.getProtocol(), "TLSv1.3");
    secure.write("<stream>");
    assert.equal(await nextData(secure), "secure:<stream>");

    const server = await upgraded;
    assert.ok(server instanceof tls.TLSSocket);
    assert.equal(server.encrypted, true);
    // Channel binding over STARTTLS, too (SCRAM-*-PLUS on port 5222).
    assert.deepEqual(
      channelBindingData(server, "tls-exporter"),
      secure.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0)),
    );
    secure.destroy();
  });

  test("a peer that never starts the handshake times out with a clear reason", async () => {
    upgradeTimeoutMs = 100;
    const plain = await plainClient();
    const result = await upgraded;
    assert.ok(result instanceof TlsUpgradeError);
    assert.equal(result.message, "TLS negotiation failed: no handshake within 100 ms");
    await once(plain, "close");
  });

  test("garbage instead of a ClientHello rejects", async () => {
    upgradeTimeoutMs = 15_000;
    const plain = await plainClient();
    plain.write("<this is not TLS/>\r\n\r\n");
    const result = await upgraded;
    assert.ok(result instanceof TlsUpgradeError);
    assert.match(result.message, /^TLS negotiation failed: /);
    plain.destroy();
  });

  test("the peer hanging up during the handshake rejects", async () => {
    upgradeTimeoutMs = 15_000;
    const plain = await plainClient();
    plain.destroy();
    const result = await upgraded;
    assert.ok(result instanceof TlsUpgradeError);
  });
});

describe("endPointHash (RFC 5929 §4.1)", () => {
  function certSignedWith(md: forge.md.MessageDigest): Buffer {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", {
      modulusLength: 1024,
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    const cert = forge.pki.createCertificate();
    cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
    cert.serialNumber = "01";
    cert.validity.notBefore = new Date();
    cert.validity.notAfter = new Date(Date.now() + 86400_000);
    cert.setSubject([{ shortName: "CN", value: "h" }]);
    cert.setIssuer([{ shortName: "CN", value: "h" }]);
    cert.sign(forge.pki.privateKeyFromPem(privateKey), md);
    return new X509Certificate(forge.pki.certificateToPem(cert)).raw;
  }

  test("uses the signature hash, SHA-256 for SHA-1 and MD5", () => {
    assert.equal(endPointHash(new X509Certificate(main.certPem).raw), "sha256");
    assert.equal(endPointHash(certSignedWith(forge.md.sha1.create())), "sha256");
    assert.equal(endPointHash(certSignedWith(forge.md.md5.create())), "sha256");
    assert.equal(endPointHash(certSignedWith(forge.md.sha384.create())), "sha384");
    assert.equal(endPointHash(certSignedWith(forge.md.sha512.create())), "sha512");
  });

  test("garbage is undefined, not an exception", () => {
    assert.equal(endPointHash(Buffer.from([0x30, 0x82, 0xff])), undefined);
    assert.equal(endPointHash(Buffer.alloc(0)), undefined);
  });
});
