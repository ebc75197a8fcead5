/**
 * TLS contexts and options shared by STARTTLS and direct TLS, the server-side STARTTLS upgrade,
 * and channel-binding data for SCRAM-*-PLUS.
 *
 * References: RFC 7590 (TLS for XMPP: TLS 1.2+), RFC 6120 §5.4.3.3 (STARTTLS proceed, then the
 * TLS negotiation), XEP-0368 §3 (direct TLS, ALPN "xmpp-client"/"xmpp-server"), RFC 6066 §3
 * (SNI), RFC 9266 (tls-exporter), RFC 5929 §4 (tls-server-end-point).
 *
 * Node's default cipher list and groups are kept: they are maintained with OpenSSL and already
 * exclude the weak suites RFC 7525 forbids.
 */
import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import tls from "node:tls";

export interface TlsMaterial {
  readonly certPem: string;
  readonly keyPem: string;
  /** Trust anchors for verifying peer certificates (s2s client certificates); default: Node's CAs. */
  readonly ca?: string | readonly string[];
}

/** RFC 7590 §3.1 (via RFC 7525 §3.1.1): TLS 1.2 at least; Node negotiates 1.3 when both sides can. */
export const MIN_TLS_VERSION: tls.SecureVersion = "TLSv1.2";

/** XEP-0368 §3: ALPN protocol ids for direct TLS. */
export const ALPN_CLIENT = "xmpp-client";
export const ALPN_SERVER = "xmpp-server";

/** createSecureContext options for a certificate/key pair (also what tls.Server needs). */
function secureOptions(material: TlsMaterial): tls.SecureContextOptions {
  return {
    cert: material.certPem,
    key: material.keyPem,
    ...(material.ca ? { ca: material.ca as string | string[] } : {}),
    minVersion: MIN_TLS_VERSION,
    // Server cipher order: our (Node's) preference wins over the client's on TLS 1.2.
    honorCipherOrder: true,
  };
}

export function createTlsContext(material: TlsMaterial): tls.SecureContext {
  return tls.createSecureContext(secureOptions(material));
}

/**
 * Contexts per host name for SNI. Keys are lower-case A-label names; "*.example.com" entries
 * match one extra label. The map is read on every handshake, so hosts can be added later.
 */
export type SniContexts = Map<string, tls.SecureContext>;

/** Picks the context for an SNI name: exact, then wildcard, then the default. */
export function selectContext(
  servername: string | undefined,
  contexts: SniContexts | undefined,
  fallback: tls.SecureContext,
): tls.SecureContext {
  if (!servername || !contexts || contexts.size === 0) return fallback;
  const name = servername.toLowerCase().replace(/\.$/, "");
  const exact = contexts.get(name);
  if (exact) return exact;
  const dot = name.indexOf(".");
  if (dot > 0) {
    const wildcard = contexts.get(`*${name.slice(dot)}`);
    if (wildcard) return wildcard;
  }
  return fallback;
}

export interface TlsServerSettings {
  /** The default certificate (used without SNI, or for an unknown name). */
  readonly material: TlsMaterial;
  /** createTlsContext(material), if already made (saves a context per STARTTLS upgrade). */
  readonly context?: tls.SecureContext;
  readonly sni?: SniContexts;
  /** ALPN protocols to accept (direct TLS: ["xmpp-client"]); omit for STARTTLS. */
  readonly alpn?: readonly string[];
  /** Ask the peer for a certificate (s2s, SASL EXTERNAL). Verification is left to the stream. */
  readonly requestCert?: boolean;
}

/** Server-side options for tls.createServer / new TLSSocket({isServer: true}). */
export function tlsServerOptions(settings: TlsServerSettings): tls.TlsOptions {
  const { sni } = settings;
  const context = settings.context ?? createTlsContext(settings.material);
  return {
    // tls.Server ignores `secureContext` and builds its own from cert/key; TLSSocket uses it.
    ...secureOptions(settings.material),
    secureContext: context,
    // RFC 6066 §3: serve the certificate for the name the client asked for.
    SNICallback: (servername, cb) => cb(null, selectContext(servername, sni, context)),
    ...(settings.alpn ? { ALPNProtocols: [...settings.alpn] } : {}),
    // A peer certificate is requested but checked by the stream (RFC 6120 §13.7.2), which can
    // still fall back to dialback or SASL when it does not verify.
    requestCert: settings.requestCert ?? false,
    rejectUnauthorized: false,
  };
}

export class TlsUpgradeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TlsUpgradeError";
  }
}

export interface UpgradeOptions extends TlsServerSettings {
  /** Time the peer has to complete the handshake (default 15 s). */
  readonly timeoutMs?: number;
}

/**
 * Server side of STARTTLS (RFC 6120 §5.4.3.3): after `<proceed/>` has been written, wraps the
 * plain socket and resolves with the TLS socket once the handshake is done. Stop reading the
 * plain socket (remove its 'data' listeners) before calling: bytes after `<proceed/>` belong to TLS.
 * On failure the socket is destroyed and the promise rejects with the reason.
 */
export function upgradeToTls(socket: Socket, opts: UpgradeOptions): Promise<tls.TLSSocket> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const secure = new tls.TLSSocket(socket, { ...tlsServerOptions(opts), isServer: true });
    let settled = false;
    const fail = (reason: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      secure.destroy();
      reject(new TlsUpgradeError(`TLS negotiation failed: ${reason}`));
    };
    const timer = setTimeout(() => fail(`no handshake within ${timeoutMs} ms`), timeoutMs);
    secure.once("secure", () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      secure.off("error", onError);
      secure.off("close", onClose);
      // Until the stream adds its own: an unhandled 'error' would crash the process, and every
      // error is followed by 'close', which the stream watches anyway.
      secure.on("error", () => {});
      resolve(secure);
    });
    const onError = (err: Error): void => fail(err.message);
    const onClose = (): void => fail("connection closed during the handshake");
    secure.on("error", onError);
    secure.once("close", onClose);
  });
}

export type ChannelBindingType = "tls-exporter" | "tls-server-end-point";

/**
 * Channel-binding data for SCRAM-*-PLUS, or undefined when this connection cannot provide the
 * type (then the mechanism must not be offered with it). `side` says whose certificate is the
 * server's: "server" for connections we accepted, "client" for ones we opened (s2s-out, tests).
 */
export function channelBindingData(
  socket: tls.TLSSocket,
  type: ChannelBindingType,
  side: "server" | "client" = "server",
): Buffer | undefined {
  if (type === "tls-exporter") {
    // RFC 9266 §3: only safe with TLS 1.3 (or 1.2 + extended master secret, which Node does not
    // expose); so 1.3 only. RFC 9266 §2: 32 bytes, label "EXPORTER-Channel-Binding", empty context.
    if (socket.getProtocol() !== "TLSv1.3") return undefined;
    return socket.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0));
  }
  const cert = side === "server" ? socket.getCertificate() : socket.getPeerCertificate();
  // getCertificate() gives {} or null when there is none.
  const raw = (cert as { raw?: Buffer } | null)?.raw;
  if (!raw) return undefined;
  const hash = endPointHash(raw);
  return hash ? createHash(hash).update(raw).digest() : undefined;
}

// Signature algorithm OID → hash (RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256).
const SIGNATURE_HASHES: Record<string, string> = {
  "1.2.840.113549.1.1.4": "sha256", // md5WithRSAEncryption
  "1.2.840.113549.1.1.5": "sha256", // sha1WithRSAEncryption
  "1.2.840.113549.1.1.14": "sha224",
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.10045.4.1": "sha256", // ecdsa-with-SHA1
  "1.2.840.10045.4.3.1": "sha224",
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "1.2.840.10040.4.3": "sha256", // dsa-with-sha1
  "2.16.840.1.101.3.4.3.2": "sha256", // dsa-with-sha256
};
const HASH_OIDS: Record<string, string> = {
  "1.3.14.3.2.26": "sha256", // SHA-1 → SHA-256
  "1.2.840.113549.2.5": "sha256", // MD5 → SHA-256
  "2.16.840.1.101.3.4.2.4": "sha224",
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
};
const OID_RSASSA_PSS = "1.2.840.113549.1.1.10";

/**
 * RFC 5929 §4.1: the hash for tls-server-end-point is the certificate's signature hash (SHA-256
 * for MD5/SHA-1). Undefined for algorithms without a single hash (Ed25519/Ed448).
 */
export function endPointHash(der: Buffer): string | undefined {
  try {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, ... }
    const cert = readTlv(der, 0);
    const tbs = readTlv(der, cert.start);
    const algId = readTlv(der, tbs.end);
    const oid = readTlv(der, algId.start);
    const algorithm = decodeOid(der.subarray(oid.start, oid.end));
    if (algorithm !== OID_RSASSA_PSS) return SIGNATURE_HASHES[algorithm];
    // RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] AlgorithmIdentifier DEFAULT sha1, ... }
    if (oid.end >= algId.end) return "sha256";
    const params = readTlv(der, oid.end);
    if (params.start >= params.end || der[params.start] !== 0xa0) return "sha256";
    const hashAlg = readTlv(der, readTlv(der, params.start).start);
    const hashOid = readTlv(der, hashAlg.start);
    return HASH_OIDS[decodeOid(der.subarray(hashOid.start, hashOid.end))];
  } catch {
    return undefined;
  }
}

/** Reads one DER TLV header at `at`: returns where its content starts and ends. */
function readTlv(der: Buffer, at: number): { start: number; end: number } {
  let pos = at + 1;
  const first = der[pos++];
  if (first === undefined) throw new RangeError("truncated DER");
  let length = first;
  if (first & 0x80) {
    const octets = first & 0x7f;
    if (octets === 0 || octets > 4) throw new RangeError("unsupported DER length");
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + (der[pos++] ?? Number.NaN);
  }
  const end = pos + length;
  if (!Number.isFinite(end) || end > der.length) throw new RangeError("truncated DER");
  return { start: pos, end };
}

function decodeOid(bytes: Buffer): string {
  const parts: number[] = [];
  let value = 0;
  for (const byte of bytes) {
    value = value * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      if (parts.length === 0)
        parts.push(value < 80 ? Math.floor(value / 40) : 2, value < 80 ? value % 40 : value - 80);
      else parts.push(value);
      value = 0;
    }
  }
  return parts.join(".");
}
