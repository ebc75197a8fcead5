/**
 * Tests for the test client: its SCRAM against the RFC vectors and against our server mechanisms,
 * and the xmpp.js plumbing (trusted CA, direct TLS and STARTTLS, mechanism choice, channel binding)
 * against a throwaway XMPP server in this file that uses the real server/sasl mechanisms.
 * References: RFC 5802 §5, RFC 7677 §3, RFC 6120 §5–§7, RFC 9266, RFC 5929 §4.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, createHmac, pbkdf2Sync, randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import tls from "node:tls";
import { Parser } from "@xmpp/xml";
import type { Element } from "ltx";
import type { SaslContext, SaslServerMechanism, ScramCredentials } from "../../server/sasl/mechanism.ts";
import { createSaslMechanisms, findMechanism, selectMechanisms } from "../../server/sasl/mechanisms.ts";
import { SaslFailure } from "../../server/xml/errors.ts";
import { type ConnectOptions, connectClient, ScramClient, tlsServerEndPoint, xml } from "./xmpp-client.ts";

const DOMAIN = "hanse.test";
const dir = mkdtempSync(join(tmpdir(), "hanse-xmpp-client-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function makeCert(name: string, keyArgs: string[], digest: string): { key: string; cert: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  const subject = ["-subj", `/CN=${DOMAIN}`, "-addext", `subjectAltName=DNS:${DOMAIN}`];
  const args = ["req", "-x509", "-nodes", "-days", "1", ...subject, `-${digest}`, ...keyArgs];
  execFileSync("openssl", [...args, "-keyout", key, "-out", cert], { stdio: "ignore" });
  return { key: readFileSync(key, "utf8"), cert: readFileSync(cert, "utf8") };
}

function derive(password: string, hash: "sha1" | "sha256"): ScramCredentials {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, 4096, hash === "sha1" ? 20 : 32, hash);
  const clientKey = createHmac(hash, salted).update("Client Key").digest();
  return {
    hash,
    salt,
    iterations: 4096,
    storedKey: createHash(hash).update(clientKey).digest(),
    serverKey: createHmac(hash, salted).update("Server Key").digest(),
  };
}

const PASSWORD = "r0m30myr0m30";
const CREDENTIALS = { sha1: derive(PASSWORD, "sha1"), sha256: derive(PASSWORD, "sha256") };

describe("ScramClient", () => {
  test("RFC 5802 §5 SCRAM-SHA-1 client side", async () => {
    const c = new ScramClient({
      mechanism: "SCRAM-SHA-1",
      username: "user",
      password: "pencil",
      nonce: "fyko+d2lbbFgONRv9qkxdawL",
    });
    assert.equal(c.clientFirst(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
    assert.equal(
      await c.clientFinal("r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"),
      "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    );
    c.verifyServerFinal("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    assert.throws(() => c.verifyServerFinal("v=AAAA"), /does not verify/);
  });

  test("RFC 7677 §3 SCRAM-SHA-256 client side", async () => {
    const c = new ScramClient({
      mechanism: "SCRAM-SHA-256",
      username: "user",
      password: "pencil",
      nonce: "rOprNGfwEbeRWgbNEkqO",
    });
    assert.equal(c.clientFirst(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    assert.equal(
      await c.clientFinal(
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
      ),
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    );
    c.verifyServerFinal("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  });

  test("refuses a server nonce that does not extend its own", async () => {
    const c = new ScramClient({ mechanism: "SCRAM-SHA-256", username: "u", password: "p", nonce: "abc" });
    c.clientFirst();
    await assert.rejects(c.clientFinal("r=xyzdef,s=QSXCR+Q6sek8bf92,i=4096"), /nonce/);
    await assert.rejects(c.clientFinal("r=abc,s=QSXCR+Q6sek8bf92,i=4096"), /nonce/);
  });

  // Two independent implementations talking: the client here, the server in server/sasl/scram.ts.
  for (const mechanism of ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"]) {
    test(`against the server mechanism: ${mechanism}`, async () => {
      const exporter = randomBytes(32);
      const ctx: SaslContext = {
        secure: true,
        channelBinding: (type) => (type === "tls-exporter" ? exporter : undefined),
        credentials: async (user, hash) => (user === "juliet" ? CREDENTIALS[hash] : undefined),
      };
      const server = findMechanism(mechanism, ctx)!.create(ctx);
      const client = new ScramClient({
        mechanism,
        username: "Juliet",
        password: PASSWORD,
        authzid: "juliet@hanse.test",
        ...(mechanism.endsWith("-PLUS") && { channelBinding: { type: "tls-exporter", data: exporter } }),
      });
      const challenge = await server.step(Buffer.from(client.clientFirst()));
      assert.equal(challenge.kind, "challenge");
      const success = await server.step(Buffer.from(await client.clientFinal(challenge.data!.toString())));
      assert.equal(success.kind, "success");
      assert.equal(success.kind === "success" && success.authzid, "juliet@hanse.test");
      client.verifyServerFinal(success.kind === "success" ? success.data!.toString() : "");
    });
  }
});

describe("tls-server-end-point", () => {
  test("hash follows the certificate's signature algorithm (checked against openssl)", async () => {
    const cases: [string, string[], string][] = [
      ["rsa", ["-newkey", "rsa:2048"], "sha256"],
      ["ec384", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"], "sha384"],
      ["rsa-sha1", ["-newkey", "rsa:2048"], "sha1"],
    ];
    for (const [name, keyArgs, digest] of cases) {
      const { cert } = makeCert(name, keyArgs, digest);
      // RFC 5929 §4.1: SHA-1 signatures are hashed with SHA-256.
      const expectedDigest = digest === "sha1" ? "sha256" : digest;
      const fingerprint = execFileSync("openssl", ["x509", "-noout", "-fingerprint", `-${expectedDigest}`], {
        input: cert,
      })
        .toString()
        .split("=")[1]!
        .trim()
        .replace(/:/g, "")
        .toLowerCase();
      const raw = new X509Certificate(cert).raw;
      assert.equal(Buffer.from(await tlsServerEndPoint(raw)).toString("hex"), fingerprint, name);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A throwaway XMPP server: just enough RFC 6120 to exercise the client, with the real mechanisms.

interface FakeServerOptions {
  directTls: boolean;
  /** Strip -PLUS from the advertised list while still being able to bind (a downgrading MITM). */
  hidePlus?: boolean;
  /** No channel binding at all. */
  noChannelBinding?: boolean;
}

interface FakeServer {
  port: number;
  authPayloads: string[];
  close(): Promise<void>;
}

const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";

async function startFakeServer(
  keys: { key: string; cert: string },
  opts: FakeServerOptions,
): Promise<FakeServer> {
  const secureContext = tls.createSecureContext(keys);
  const endPoint = createHash("sha256").update(new X509Certificate(keys.cert).raw).digest();
  const factories = createSaslMechanisms();
  const authPayloads: string[] = [];
  const sockets = new Set<net.Socket>();

  function serve(raw: net.Socket): void {
    let socket: net.Socket = raw;
    let tlsSocket: tls.TLSSocket | undefined = raw instanceof tls.TLSSocket ? raw : undefined;
    let user: string | undefined;
    let mech: SaslServerMechanism | undefined;
    let parser = new Parser();
    const write = (data: string | Element) => socket.write(data.toString());
    const onData = (data: Buffer) => parser.write(data.toString("utf8"));
    const ctx: SaslContext = {
      get secure() {
        return tlsSocket !== undefined;
      },
      channelBinding(type) {
        if (!tlsSocket || opts.noChannelBinding) return undefined;
        if (type === "tls-server-end-point") return endPoint; // RFC 5929 §4.1 (sha256WithRSA)
        return tlsSocket.getProtocol() === "TLSv1.3"
          ? tlsSocket.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0))
          : undefined;
      },
      credentials: async (username, hash) => (username === "juliet" ? CREDENTIALS[hash] : undefined),
    };

    function features(): Element {
      const f = xml("stream:features");
      if (!tlsSocket) f.c("starttls", { xmlns: NS_TLS }).c("required");
      else if (!user) {
        const m = f.c("mechanisms", { xmlns: NS_SASL });
        for (const name of selectMechanisms(ctx, factories)) {
          if (!(opts.hidePlus && name.endsWith("-PLUS"))) m.c("mechanism").t(name);
        }
      } else f.c("bind", { xmlns: "urn:ietf:params:xml:ns:xmpp-bind" });
      return f;
    }

    function restart(): void {
      parser = new Parser();
      listen();
    }

    async function saslStep(data: Buffer): Promise<void> {
      try {
        const step = await mech!.step(data);
        if (step.kind === "challenge") {
          write(xml("challenge", { xmlns: NS_SASL }, step.data.toString("base64")));
        } else {
          user = step.username;
          restart();
          write(xml("success", { xmlns: NS_SASL }, step.data ? step.data.toString("base64") : undefined));
        }
      } catch (err) {
        const condition = err instanceof SaslFailure ? err.condition : "temporary-auth-failure";
        write(xml("failure", { xmlns: NS_SASL }, xml(condition)));
      }
    }

    function onElement(el: Element): void {
      if (el.is("starttls", NS_TLS)) {
        write(xml("proceed", { xmlns: NS_TLS }));
        socket.off("data", onData);
        tlsSocket = new tls.TLSSocket(socket, { isServer: true, secureContext });
        socket = tlsSocket;
        restart();
        socket.on("data", onData);
      } else if (el.is("auth", NS_SASL)) {
        const data = Buffer.from(el.getText(), "base64");
        authPayloads.push(data.toString("utf8"));
        const factory = findMechanism(el.attrs["mechanism"] as string, ctx, factories);
        if (!factory) return void write(xml("failure", { xmlns: NS_SASL }, xml("invalid-mechanism")));
        mech = factory.create(ctx);
        void saslStep(data);
      } else if (el.is("response", NS_SASL)) {
        void saslStep(Buffer.from(el.getText(), "base64"));
      } else if (el.name === "iq" && el.getChild("bind")) {
        const resource = el.getChild("bind")?.getChildText("resource") ?? "generated";
        write(
          xml(
            "iq",
            { type: "result", id: el.attrs["id"] as string },
            xml(
              "bind",
              { xmlns: "urn:ietf:params:xml:ns:xmpp-bind" },
              xml("jid", {}, `${user}@${DOMAIN}/${resource}`),
            ),
          ),
        );
      } else if (el.name === "iq" && el.getChild("ping", "urn:xmpp:ping")) {
        write(xml("iq", { type: "result", id: el.attrs["id"] as string, from: DOMAIN }));
      } else if (el.name === "message") {
        // Echo, so tests can see a stanza come back.
        write(
          xml("message", { from: DOMAIN, type: "chat" }, xml("body", {}, `echo: ${el.getChildText("body")}`)),
        );
      }
    }

    function listen(): void {
      parser.on("start", () => {
        write(
          `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' ` +
            `from='${DOMAIN}' id='${randomBytes(8).toString("hex")}' version='1.0'>`,
        );
        write(features());
      });
      parser.on("element", onElement);
      parser.on("end", () => {
        write("</stream:stream>");
        socket.end();
      });
      parser.on("error", () => socket.destroy());
    }

    listen();
    socket.on("data", onData);
    socket.on("error", () => {});
  }

  const server = opts.directTls ? tls.createServer(keys, serve) : net.createServer((s) => serve(s));
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    authPayloads,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("connectClient against a throwaway server", () => {
  let keys: { key: string; cert: string };
  const servers: FakeServer[] = [];
  before(() => {
    keys = makeCert("server", ["-newkey", "rsa:2048"], "sha256");
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  async function server(opts: FakeServerOptions): Promise<FakeServer> {
    const s = await startFakeServer(keys, opts);
    servers.push(s);
    return s;
  }

  function options(s: FakeServer, directTls: boolean, extra: Partial<ConnectOptions> = {}): ConnectOptions {
    return {
      service: `${directTls ? "xmpps" : "xmpp"}://127.0.0.1:${s.port}`,
      domain: DOMAIN,
      username: "juliet",
      password: PASSWORD,
      resource: "balcony",
      ca: keys.cert,
      ...extra,
    };
  }

  async function rejectsWith(
    promise: Promise<unknown>,
    check: (err: { condition?: string; code?: string; message: string }) => boolean,
  ) {
    await assert.rejects(promise, (err: unknown) => {
      assert.ok(check(err as { condition?: string; code?: string; message: string }), String(err));
      return true;
    });
  }

  for (const directTls of [true, false]) {
    const how = directTls ? "direct TLS" : "STARTTLS";

    test(`${how}: trusted CA, best mechanism, iq and message round trips`, async () => {
      const s = await server({ directTls });
      const client = await connectClient(options(s, directTls));
      try {
        assert.equal(client.jid?.toString(), `juliet@${DOMAIN}/balcony`);
        assert.equal(client.sasl.chosen, "SCRAM-SHA-256-PLUS");
        assert.equal(client.sasl.serverFinalVerified, true);
        assert.equal(client.tlsSocket()?.authorized, true);
        assert.equal(client.tlsSocket()?.getProtocol(), "TLSv1.3");
        assert.match(s.authPayloads.at(-1)!, /^p=tls-exporter,,n=juliet,r=/);
        const result = await client.iqCaller.request(
          xml("iq", { type: "get", to: DOMAIN }, xml("ping", { xmlns: "urn:xmpp:ping" })),
        );
        assert.equal(result.attrs["type"], "result");
        await client.send(xml("message", { to: DOMAIN }, xml("body", {}, "hi")));
        const echo = await client.nextStanza((st) => st.name === "message");
        assert.equal(echo.getChildText("body"), "echo: hi");
      } finally {
        await client.stop();
      }
    });

    test(`${how}: untrusted certificate is refused without ca`, async () => {
      const s = await server({ directTls });
      await rejectsWith(connectClient({ ...options(s, directTls), ca: undefined }), (e) =>
        /SELF_SIGNED|UNABLE_TO_VERIFY/.test(e.code ?? ""),
      );
    });
  }

  test("certificate name is checked against the domain, not the IP", async () => {
    const s = await server({ directTls: true });
    await rejectsWith(
      connectClient({ ...options(s, true), domain: "other.test" }),
      (e) => e.code === "ERR_TLS_CERT_ALTNAME_INVALID",
    );
  });

  for (const mechanism of [
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256-PLUS",
    "PLAIN",
  ] as const) {
    test(`forced mechanism ${mechanism}`, async () => {
      const s = await server({ directTls: true });
      const client = await connectClient(options(s, true, { mechanism }));
      assert.equal(client.sasl.chosen, mechanism);
      assert.equal(client.sasl.serverFinalVerified, mechanism !== "PLAIN");
      if (!mechanism.endsWith("-PLUS") && mechanism !== "PLAIN") {
        assert.match(s.authPayloads.at(-1)!, /^n,,/); // the server offered -PLUS: flag n
      }
      await client.stop();
    });
  }

  test("tls-server-end-point binding", async () => {
    const s = await server({ directTls: true });
    const client = await connectClient(options(s, true, { channelBindingType: "tls-server-end-point" }));
    assert.match(s.authPayloads.at(-1)!, /^p=tls-server-end-point,,/);
    await client.stop();
  });

  test("TLS 1.2: no tls-exporter (RFC 9266 §3); tls-server-end-point still works", async () => {
    const s = await server({ directTls: true });
    const tls12 = { maxVersion: "TLSv1.2" } as const;
    await rejectsWith(connectClient(options(s, true, { mechanism: "SCRAM-SHA-256-PLUS", tls: tls12 })), (e) =>
      /no tls-exporter data/.test(e.message),
    );
    // Unforced, the client skips -PLUS it cannot run and says "n" (the server did offer -PLUS).
    const client = await connectClient(options(s, true, { tls: tls12 }));
    assert.equal(client.sasl.chosen, "SCRAM-SHA-256");
    assert.match(s.authPayloads.at(-1)!, /^n,,/);
    await client.stop();
    const bound = await connectClient(
      options(s, true, { tls: tls12, channelBindingType: "tls-server-end-point" }),
    );
    assert.equal(bound.sasl.chosen, "SCRAM-SHA-256-PLUS");
    await bound.stop();
  });

  test("wrong password and unknown user: SASL failure condition", async () => {
    const s = await server({ directTls: true });
    await rejectsWith(
      connectClient(options(s, true, { password: "nope" })),
      (e) => e.condition === "not-authorized",
    );
    await rejectsWith(
      connectClient(options(s, true, { username: "romeo" })),
      (e) => e.condition === "not-authorized",
    );
    await rejectsWith(
      connectClient(options(s, true, { mechanism: "PLAIN", password: "nope" })),
      (e) => e.condition === "not-authorized",
    );
  });

  test("invalid authzid", async () => {
    const s = await server({ directTls: true });
    await rejectsWith(
      connectClient(options(s, true, { authzid: `romeo@${DOMAIN}` })),
      (e) => e.condition === "invalid-authzid",
    );
  });

  test("y flag: accepted by a server that cannot bind, refused when -PLUS was stripped", async () => {
    const plain = await server({ directTls: true, noChannelBinding: true });
    const client = await connectClient(options(plain, true));
    assert.equal(client.sasl.chosen, "SCRAM-SHA-256");
    assert.match(plain.authPayloads.at(-1)!, /^y,,/);
    await client.stop();

    const mitm = await server({ directTls: true, hidePlus: true });
    await rejectsWith(connectClient(options(mitm, true)), (e) => e.condition === "not-authorized");
    await rejectsWith(
      connectClient(options(mitm, true, { gs2Flag: "y", mechanism: "SCRAM-SHA-1" })),
      (e) => e.condition === "not-authorized",
    );
  });

  test("streamManagement option is inert when the server does not offer XEP-0198", async () => {
    const s = await server({ directTls: true });
    const client = await connectClient(options(s, true, { streamManagement: true }));
    assert.equal(client.streamManagement?.enabled, false);
    await client.stop();
  });

  test("forcing a mechanism the server does not offer", async () => {
    const s = await server({ directTls: true, noChannelBinding: true });
    await rejectsWith(connectClient(options(s, true, { mechanism: "SCRAM-SHA-1-PLUS" })), (e) =>
      /not offered/.test(e.message),
    );
  });
});
