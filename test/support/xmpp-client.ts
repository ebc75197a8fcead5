/**
 * An independent XMPP client for integration tests: xmpp.js (@xmpp/*) building blocks plus our own
 * client-side SCRAM (WebCrypto, no server code), with the test server's self-signed CA trusted.
 * References: RFC 6120 §5 (STARTTLS), §6 (SASL), §7 (resource binding); RFC 5802 (SCRAM),
 * RFC 7677 (SCRAM-SHA-256), RFC 9266 (tls-exporter), RFC 5929 §4 (tls-server-end-point),
 * RFC 5280 §4.1 (certificate signatureAlgorithm), RFC 4616 (PLAIN).
 *
 * Why it is composed by hand rather than with @xmpp/client's `client()`: that function hard-wires
 * @xmpp/starttls, which calls `tls.connect({ socket, host })` with no way to add `ca`, and it pulls
 * in reconnect, SASL2, FAST and Bind2. Here we take the same pieces (client-core, tcp, tls,
 * middleware, stream-features, iq, sasl, resource-binding, optionally stream-management) and
 * replace only STARTTLS (same protocol, plus our TLS options) and the TLS transport (a subclass whose
 * socket parameters carry `ca` and `servername`). NODE_TLS_REJECT_UNAUTHORIZED is never touched.
 *
 * This file must not import server code: it is the other side of the conversation.
 */
import { webcrypto, type X509Certificate } from "node:crypto";
import tls from "node:tls";
import saslprep from "@mongodb-js/saslprep";
import { Client, type JID, jid, xml } from "@xmpp/client-core";
import { promise } from "@xmpp/events";
import iqCalleeSetup, { type IqCallee } from "@xmpp/iq/callee.js";
import iqCallerSetup, { type IqCaller } from "@xmpp/iq/caller.js";
import middlewareSetup, { type MiddlewareApi } from "@xmpp/middleware";
import resourceBinding from "@xmpp/resource-binding";
import sasl from "@xmpp/sasl";
import streamFeaturesSetup, { type StreamFeatures } from "@xmpp/stream-features";
import streamManagementSetup, { type StreamManagement } from "@xmpp/stream-management";
import tcp from "@xmpp/tcp";
import ConnectionTLS from "@xmpp/tls/lib/Connection.js";
import TlsSocket from "@xmpp/tls/lib/Socket.js";
import type { Element } from "ltx";
import SASLFactory, { type ClientMechanism } from "saslmechanisms";

export type { Element, JID };
export { jid, xml };

export type ClientMechanismName =
  | "SCRAM-SHA-256-PLUS"
  | "SCRAM-SHA-1-PLUS"
  | "SCRAM-SHA-256"
  | "SCRAM-SHA-1"
  | "PLAIN";
export type ChannelBindingName = "tls-exporter" | "tls-server-end-point";

/** Our preference when the test does not force a mechanism. */
export const CLIENT_MECHANISMS: readonly ClientMechanismName[] = [
  "SCRAM-SHA-256-PLUS",
  "SCRAM-SHA-1-PLUS",
  "SCRAM-SHA-256",
  "SCRAM-SHA-1",
  "PLAIN",
];

const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const subtle = webcrypto.subtle;
const enc = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Client-side SCRAM (sans I/O), written against the RFCs with WebCrypto.

export interface ScramClientOptions {
  readonly mechanism: string; // SCRAM-SHA-1, SCRAM-SHA-256, with or without -PLUS
  readonly username: string;
  readonly password: string;
  readonly authzid?: string;
  /** Required for -PLUS. */
  readonly channelBinding?: { readonly type: string; readonly data: Uint8Array };
  /** gs2-cbind-flag for a non-PLUS mechanism: "y" = we could bind but the server offered no -PLUS. */
  readonly gs2Flag?: "n" | "y";
  readonly nonce?: string;
}

/** RFC 5802 §5.1: "," and "=" in a saslname are written =2C and =3D. */
function saslname(value: string): string {
  return value.replace(/=/g, "=3D").replace(/,/g, "=2C");
}

function b64(bytes: Uint8Array | string): string {
  return Buffer.from(typeof bytes === "string" ? enc.encode(bytes) : bytes).toString("base64");
}

export class ScramClient {
  readonly #hash: "SHA-1" | "SHA-256";
  readonly #opts: ScramClientOptions;
  readonly #gs2Header: string;
  readonly #clientNonce: string;
  #clientFirstBare = "";
  #expectedServerFinal: string | undefined;

  constructor(opts: ScramClientOptions) {
    const m = /^SCRAM-(SHA-1|SHA-256)(-PLUS)?$/.exec(opts.mechanism);
    if (!m) throw new Error(`not a SCRAM mechanism: ${opts.mechanism}`);
    this.#hash = m[1] as "SHA-1" | "SHA-256";
    this.#opts = opts;
    // RFC 5802 §7: gs2-header = gs2-cbind-flag "," [ authzid ] ","
    let flag: string;
    if (m[2]) {
      if (!opts.channelBinding) throw new Error(`${opts.mechanism} needs channel-binding data`);
      flag = `p=${opts.channelBinding.type}`;
    } else {
      flag = opts.gs2Flag ?? "n";
    }
    this.#gs2Header = `${flag},${opts.authzid ? `a=${saslname(opts.authzid)}` : ""},`;
    this.#clientNonce = opts.nonce ?? b64(webcrypto.getRandomValues(new Uint8Array(18)));
  }

  /** client-first-message. The user name goes out as given so tests exercise the server's SASLprep. */
  clientFirst(): string {
    this.#clientFirstBare = `n=${saslname(this.#opts.username)},r=${this.#clientNonce}`;
    return this.#gs2Header + this.#clientFirstBare;
  }

  /** client-final-message for a server-first-message. */
  async clientFinal(serverFirst: string): Promise<string> {
    const attrs = new Map(serverFirst.split(",").map((a) => [a.slice(0, 1), a.slice(2)] as const));
    if (serverFirst.startsWith("m=")) throw new Error("SCRAM: server requires an unknown extension");
    const nonce = attrs.get("r");
    const salt = attrs.get("s");
    const iterations = Number(attrs.get("i"));
    // RFC 5802 §5.1: the server's nonce must extend ours.
    if (!nonce?.startsWith(this.#clientNonce) || nonce.length <= this.#clientNonce.length) {
      throw new Error("SCRAM: server nonce does not extend the client nonce");
    }
    if (!salt || !Number.isSafeInteger(iterations) || iterations < 1)
      throw new Error("SCRAM: bad server-first");

    const cbData = this.#opts.channelBinding?.data ?? new Uint8Array(0);
    const cbind = Buffer.concat([enc.encode(this.#gs2Header), cbData]);
    const withoutProof = `c=${b64(cbind)},r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;

    // RFC 5802 §3: SaltedPassword := Hi(Normalize(password), salt, i) — Hi is PBKDF2.
    const bits = this.#hash === "SHA-1" ? 160 : 256;
    const pwKey = await subtle.importKey(
      "raw",
      enc.encode(saslprep(this.#opts.password, { allowUnassigned: true })),
      "PBKDF2",
      false,
      ["deriveBits"],
    );
    const salted = new Uint8Array(
      await subtle.deriveBits(
        { name: "PBKDF2", hash: this.#hash, salt: Buffer.from(salt, "base64"), iterations },
        pwKey,
        bits,
      ),
    );
    const clientKey = await this.#hmac(salted, "Client Key");
    const storedKey = new Uint8Array(await subtle.digest(this.#hash, clientKey));
    const clientSignature = await this.#hmac(storedKey, authMessage);
    const proof = clientKey.map((b, i) => b ^ clientSignature[i]!);
    const serverSignature = await this.#hmac(await this.#hmac(salted, "Server Key"), authMessage);
    this.#expectedServerFinal = `v=${b64(serverSignature)}`;
    return `${withoutProof},p=${b64(proof)}`;
  }

  /** Checks server-final-message (RFC 5802 §5.1 "v"); throws on e= or a wrong signature. */
  verifyServerFinal(serverFinal: string): void {
    if (serverFinal.startsWith("e=")) throw new Error(`SCRAM: server error ${serverFinal.slice(2)}`);
    if (this.#expectedServerFinal === undefined || serverFinal !== this.#expectedServerFinal) {
      throw new Error("SCRAM: the server signature does not verify");
    }
  }

  async #hmac(key: Uint8Array, data: string | Uint8Array): Promise<Uint8Array> {
    const k = await subtle.importKey("raw", key, { name: "HMAC", hash: this.#hash }, false, ["sign"]);
    return new Uint8Array(await subtle.sign("HMAC", k, typeof data === "string" ? enc.encode(data) : data));
  }
}

// ---------------------------------------------------------------------------------------------
// Channel-binding data on the client's TLS socket.

// RFC 5280 §4.1.1.2 signatureAlgorithm OIDs (DER content, hex) -> the hash RFC 5929 §4.1 uses:
// the certificate's own hash, except MD5 and SHA-1, which become SHA-256.
const SIGNATURE_HASH: Record<string, string> = {
  "2a864886f70d010104": "sha256", // md5WithRSAEncryption
  "2a864886f70d010105": "sha256", // sha1WithRSAEncryption
  "2a864886f70d01010b": "sha256", // sha256WithRSAEncryption
  "2a864886f70d01010c": "sha384", // sha384WithRSAEncryption
  "2a864886f70d01010d": "sha512", // sha512WithRSAEncryption
  "2a8648ce3d0401": "sha256", // ecdsa-with-SHA1
  "2a8648ce3d040302": "sha256", // ecdsa-with-SHA256
  "2a8648ce3d040303": "sha384", // ecdsa-with-SHA384
  "2a8648ce3d040304": "sha512", // ecdsa-with-SHA512
};

/** One DER TLV at `offset`: where its contents start and where it ends. */
function derTlv(der: Uint8Array, offset: number): { contents: number; end: number } {
  let pos = offset + 1;
  const first = der[pos++]!;
  let length = first;
  if (first & 0x80) {
    length = 0;
    for (let n = first & 0x7f; n > 0; n--) length = length * 256 + der[pos++]!;
  }
  if (pos + length > der.length) throw new Error("truncated DER");
  return { contents: pos, end: pos + length };
}

/** RFC 5929 §4.1: tls-server-end-point = hash of the server certificate (DER). */
export async function tlsServerEndPoint(certificateDer: Uint8Array): Promise<Uint8Array> {
  // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, signature }
  const cert = derTlv(certificateDer, 0);
  const tbs = derTlv(certificateDer, cert.contents);
  const algorithm = derTlv(certificateDer, tbs.end);
  const oid = derTlv(certificateDer, algorithm.contents);
  const key = Buffer.from(certificateDer.subarray(oid.contents, oid.end)).toString("hex");
  const hash = SIGNATURE_HASH[key];
  if (!hash) throw new Error(`tls-server-end-point is undefined for signature algorithm OID ${key}`);
  const name = hash === "sha256" ? "SHA-256" : hash === "sha384" ? "SHA-384" : "SHA-512";
  return new Uint8Array(await subtle.digest(name, certificateDer));
}

/** The channel-binding data of a connected TLS socket, or undefined where the type is undefined. */
export async function channelBindingData(
  socket: tls.TLSSocket,
  type: ChannelBindingName,
): Promise<Uint8Array | undefined> {
  if (type === "tls-exporter") {
    // RFC 9266 §2: 32 bytes, label "EXPORTER-Channel-Binding", empty context; §3: TLS 1.3 only.
    if (socket.getProtocol() !== "TLSv1.3") return undefined;
    return socket.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0));
  }
  const cert = peerCertificate(socket);
  return cert ? tlsServerEndPoint(cert.raw) : undefined;
}

// COMPAT: on a Node 20.20 client TLSSocket, getPeerX509Certificate() answers once; afterwards it
// and getPeerCertificate() return nothing (measured; server sockets are not affected). Ask once.
const peerCertificates = new WeakMap<tls.TLSSocket, X509Certificate | undefined>();
function peerCertificate(socket: tls.TLSSocket): X509Certificate | undefined {
  if (!peerCertificates.has(socket)) peerCertificates.set(socket, socket.getPeerX509Certificate());
  return peerCertificates.get(socket);
}

// ---------------------------------------------------------------------------------------------
// SASL mechanisms registered in xmpp.js's saslmechanisms factory.

interface SaslState {
  offered: string[];
  chosen: string | undefined;
  /** The running SCRAM exchange, to verify <success/> data. */
  scram: ScramClient | undefined;
  serverFinalVerified: boolean;
  serverFinalError: Error | undefined;
}

interface MechanismConfig {
  readonly channelBindingType: ChannelBindingName;
  readonly gs2Flag: "n" | "y" | undefined;
  readonly tlsSocket: () => tls.TLSSocket | undefined;
  readonly state: SaslState;
}

/** xmpp.js hands challenges over as binary strings (atob) and base64s our answers with btoa. */
const toBinary = (s: string) => Buffer.from(s, "utf8").toString("latin1");
const fromBinary = (s: string) => Buffer.from(s, "latin1").toString("utf8");

function scramMechanism(name: string, config: MechanismConfig): new () => ClientMechanism {
  const plus = name.endsWith("-PLUS");
  return class ScramMechanism implements ClientMechanism {
    readonly name = name;
    readonly clientFirst = true;
    #stage: "first" | "final" | "done" = "first";
    #challenge = "";

    challenge(challenge: string): void {
      this.#challenge = fromBinary(challenge);
    }

    async response(credentials: Record<string, unknown>): Promise<string> {
      const { state } = config;
      if (this.#stage === "first") {
        this.#stage = "final";
        const socket = config.tlsSocket();
        let channelBinding: ScramClientOptions["channelBinding"];
        let gs2Flag = config.gs2Flag;
        if (plus) {
          const data = socket && (await channelBindingData(socket, config.channelBindingType));
          if (!data) throw new Error(`${name}: no ${config.channelBindingType} data on this connection`);
          channelBinding = { type: config.channelBindingType, data };
        } else if (gs2Flag === undefined) {
          // RFC 5802 §6: "y" if we could bind but the server offered no -PLUS.
          const couldBind =
            socket !== undefined && (await channelBindingData(socket, config.channelBindingType));
          gs2Flag = couldBind && !state.offered.some((m) => m.endsWith("-PLUS")) ? "y" : "n";
        }
        state.scram = new ScramClient({
          mechanism: name,
          username: String(credentials["username"]),
          password: String(credentials["password"]),
          ...(typeof credentials["authzid"] === "string" && { authzid: credentials["authzid"] }),
          ...(channelBinding && { channelBinding }),
          gs2Flag: gs2Flag ?? "n",
        });
        return toBinary(state.scram.clientFirst());
      }
      if (this.#stage === "final") {
        this.#stage = "done";
        return toBinary(await state.scram!.clientFinal(this.#challenge));
      }
      // RFC 6120 §6.3.10: a server may send server-final in a challenge and then an empty <success/>.
      state.scram!.verifyServerFinal(this.#challenge);
      state.serverFinalVerified = true;
      return "";
    }
  };
}

function plainMechanism(): new () => ClientMechanism {
  return class PlainMechanism implements ClientMechanism {
    readonly name = "PLAIN";
    readonly clientFirst = true;
    challenge(): void {}
    response(credentials: Record<string, unknown>): string {
      // RFC 4616 §2: [authzid] NUL authcid NUL passwd, UTF-8.
      const authzid = typeof credentials["authzid"] === "string" ? credentials["authzid"] : "";
      return toBinary(`${authzid}\0${String(credentials["username"])}\0${String(credentials["password"])}`);
    }
  };
}

// ---------------------------------------------------------------------------------------------
// The client.

export interface ConnectOptions {
  /** "xmpp://127.0.0.1:PORT" (STARTTLS) or "xmpps://127.0.0.1:PORT" (direct TLS, XEP-0368). */
  readonly service: string;
  readonly domain: string;
  readonly username: string;
  readonly password: string;
  readonly resource?: string;
  /** PEM CA(s) to trust, e.g. the test server's self-signed certificate. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** Force a mechanism; fails if the server does not offer it. Default: the best one offered. */
  readonly mechanism?: ClientMechanismName;
  readonly authzid?: string;
  /** Channel-binding type for -PLUS (default tls-exporter). */
  readonly channelBindingType?: ChannelBindingName;
  /** Force the gs2-cbind-flag of a non-PLUS SCRAM (e.g. "y" to provoke downgrade detection). */
  readonly gs2Flag?: "n" | "y";
  /** Negotiate STARTTLS when offered on xmpp:// (default true). false tests the cleartext path. */
  readonly starttls?: boolean;
  /** Enable XEP-0198 when the server offers it (default false). */
  readonly streamManagement?: boolean;
  /** Extra tls.connect options (minVersion/maxVersion, client cert/key, ...). */
  readonly tls?: tls.ConnectionOptions;
  /** Give up connecting after this many ms (default 10 000). */
  readonly timeout?: number;
}

export interface TestClient extends Client {
  readonly iqCaller: IqCaller;
  readonly iqCallee: IqCallee;
  readonly middleware: MiddlewareApi;
  readonly streamFeatures: StreamFeatures;
  readonly streamManagement: StreamManagement | undefined;
  /** What SASL did: mechanisms offered (and supported by us), the one used, whether v= verified. */
  readonly sasl: Readonly<SaslState>;
  /** Every stanza received, in order, until taken by nextStanza. */
  readonly inbox: Element[];
  /** Every error the entity emitted (TLS, stream errors, SASL failures, ...). */
  readonly errors: Error[];
  /** Takes the first received stanza matching `predicate` (buffered or future). */
  nextStanza(predicate?: (stanza: Element) => boolean, timeoutMs?: number): Promise<Element>;
  /** The TLS socket under the stream, if any. */
  tlsSocket(): tls.TLSSocket | undefined;
}

/** Builds the client without connecting (attach listeners, then `start()`). */
export function createClient(opts: ConnectOptions): TestClient {
  const { domain } = opts;
  const tlsOptions: tls.ConnectionOptions = {
    ...(opts.ca !== undefined && { ca: opts.ca as tls.ConnectionOptions["ca"] }),
    // Verify the certificate against the XMPP domain even when the service is an IP address
    // (RFC 6120 §13.7.2.1); this also sends it as SNI.
    servername: domain,
    ...opts.tls,
  };

  const entity = new Client({ service: opts.service, domain });
  entity.jid = jid(opts.username, domain);
  // COMPAT: xmpp.js's Connection.open() starts listening for the peer's stream header only after
  // the write callback of its own header. Over TLS 1.3 the server's header can arrive first (seen
  // here on direct TLS): open() then misses it, and an early SASL failure leaves start()'s
  // "online" promise rejected and unhandled. Same steps as upstream, listener first.
  entity.open = async function open(this: Client, { domain, lang }) {
    const opened = promise<Element>(this, "open", "error", this.timeout);
    opened.catch(() => {}); // the caller gets the rejection; this only marks it handled
    this._status("opening");
    const header = this.headerElement();
    header.attrs["to"] = domain;
    header.attrs["xml:lang"] = lang;
    this.root = header;
    this._attachParser(new this.Parser());
    await this.write(this.header(header));
    return opened;
  };
  tcp({ entity }); // xmpp:// — plain TCP, then STARTTLS
  // xmpps:// — direct TLS: xmpp.js's transport, with our TLS options in its socket parameters.
  entity.transports.push(
    class TrustingConnectionTLS extends ConnectionTLS {
      override socketParameters(service: string) {
        const params = super.socketParameters(service);
        return params && { ...params, ...tlsOptions };
      }
    },
  );

  const middleware = middlewareSetup({ entity });
  const streamFeatures = streamFeaturesSetup({ middleware });
  const iqCaller = iqCallerSetup({ middleware, entity });
  const iqCallee = iqCalleeSetup({ middleware, entity });
  iqCallee.get("urn:xmpp:ping", "ping", () => ({})); // XEP-0199: answer pings

  const tlsSocket = (): tls.TLSSocket | undefined => {
    const inner = (entity.socket as { socket?: unknown } | null)?.socket;
    return inner instanceof tls.TLSSocket ? inner : undefined;
  };

  // RFC 6120 §5.4: STARTTLS, as @xmpp/starttls does it, but with our TLS options.
  streamFeatures.use("starttls", NS_TLS, async ({ entity }, next) => {
    if (entity.isSecure() || opts.starttls === false) return next();
    const answer = await entity.sendReceive(xml("starttls", { xmlns: NS_TLS }));
    if (!answer.is("proceed", NS_TLS)) throw new Error("STARTTLS_FAILURE");
    const socket = new TlsSocket();
    socket.connect({ socket: entity.socket as import("node:net").Socket, host: domain, ...tlsOptions });
    await promise(socket, "connect");
    entity._attachSocket(socket);
    await entity.restart();
  });

  const state: SaslState = {
    offered: [],
    chosen: undefined,
    scram: undefined,
    serverFinalVerified: false,
    serverFinalError: undefined,
  };
  const config: MechanismConfig = {
    channelBindingType: opts.channelBindingType ?? "tls-exporter",
    gs2Flag: opts.gs2Flag,
    tlsSocket,
    state,
  };
  const saslFactory = new SASLFactory();
  for (const name of CLIENT_MECHANISMS) {
    saslFactory.use(name, name === "PLAIN" ? plainMechanism() : scramMechanism(name, config));
  }
  // @xmpp/sasl ignores <success/> data; catch it here (registered before its own listener).
  entity.on("nonza", (element: Element) => {
    if (!element.is("success", NS_SASL) || !state.scram) return;
    const text = element.getText();
    if (!text || text === "=") return;
    try {
      state.scram.verifyServerFinal(Buffer.from(text, "base64").toString("utf8"));
      state.serverFinalVerified = true;
    } catch (err) {
      state.serverFinalError = err as Error; // thrown below, not inside the parser's emit
    }
  });
  sasl({ streamFeatures, saslFactory }, async (authenticate, mechanisms) => {
    state.offered = mechanisms;
    // Unforced: the best offered mechanism we can actually run (-PLUS needs binding data here).
    const socket = tlsSocket();
    const canBind =
      socket !== undefined && (await channelBindingData(socket, config.channelBindingType)) !== undefined;
    const chosen = opts.mechanism ?? mechanisms.find((m) => canBind || !m.endsWith("-PLUS"));
    if (!chosen || !mechanisms.includes(chosen)) {
      throw new Error(
        `SASL: ${opts.mechanism} not offered (offered and supported: ${mechanisms.join(", ")})`,
      );
    }
    state.chosen = chosen;
    await authenticate(
      { username: opts.username, password: opts.password, ...(opts.authzid && { authzid: opts.authzid }) },
      chosen,
    );
    // RFC 5802 §5.1: the client MUST verify the server signature before trusting the session.
    if (state.serverFinalError) throw state.serverFinalError;
    if (state.scram && !state.serverFinalVerified) throw new Error("SCRAM: server sent no signature");
  });

  // Registered before resource binding so it can wrap it, as @xmpp/client does.
  const streamManagement = opts.streamManagement
    ? streamManagementSetup({ streamFeatures, entity, middleware })
    : undefined;
  resourceBinding({ iqCaller, streamFeatures }, opts.resource);

  const inbox: Element[] = [];
  const errors: Error[] = [];
  const waiters = new Set<() => void>();
  entity.on("stanza", (stanza: Element) => {
    inbox.push(stanza);
    for (const wake of waiters) wake();
  });
  // xmpp.js re-emits socket and stream errors on the entity; without a listener they would be
  // uncaught. start() still rejects with them (it listens too).
  entity.on("error", (err: Error) => errors.push(err));

  function nextStanza(predicate: (s: Element) => boolean = () => true, timeoutMs = 5000): Promise<Element> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const i = inbox.findIndex(predicate);
        if (i < 0) return false;
        const [stanza] = inbox.splice(i, 1);
        waiters.delete(wake);
        clearTimeout(timer);
        resolve(stanza!);
        return true;
      };
      const wake = () => void check();
      const timer = setTimeout(() => {
        waiters.delete(wake);
        reject(new Error(`no matching stanza within ${timeoutMs} ms`));
      }, timeoutMs);
      if (!check()) waiters.add(wake);
    });
  }

  return Object.assign(entity, {
    iqCaller,
    iqCallee,
    middleware,
    streamFeatures,
    streamManagement,
    sasl: state,
    inbox,
    errors,
    nextStanza,
    tlsSocket,
  });
}

/**
 * Connects, negotiates TLS and SASL, binds a resource, and resolves once online. Rejects with the
 * error that stopped it: for a SASL <failure/>, an xmpp.js SASLError whose `condition` is the
 * RFC 6120 §6.5 condition (e.g. "not-authorized"); the connection is closed first.
 */
export async function connectClient(opts: ConnectOptions): Promise<TestClient> {
  const client = createClient(opts);
  const swallow = () => {};
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.start(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("connectClient: timed out")), opts.timeout ?? 10_000);
      }),
    ]);
    return client;
  } catch (err) {
    await client.stop().catch(swallow);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** What a test needs to know about a broker to log in to it (a TestBroker fits). */
export interface BrokerEndpoint {
  readonly domain: string;
  readonly ports: { readonly c2s?: number | undefined };
  readonly certificatePem: string;
}

/** Logs in to a test broker over STARTTLS on loopback, trusting its certificate. */
export function loginTo(
  broker: BrokerEndpoint,
  username: string,
  password: string,
  opts: Partial<Omit<ConnectOptions, "username" | "password">> = {},
): Promise<TestClient> {
  return connectClient({
    service: `xmpp://127.0.0.1:${broker.ports.c2s}`,
    domain: broker.domain,
    username,
    password,
    ca: broker.certificatePem,
    ...opts,
  });
}
