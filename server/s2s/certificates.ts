/**
 * Is the peer's certificate good for a domain? Chain validation is TLS's (against our trust anchors:
 * the system roots plus `[s2s] ca_file`); the identity check is ours, on the three identifier types
 * RFC 6120 allows for servers.
 * References: RFC 6120 §13.7.1.2 (server certificates: DNS-ID, SRV-ID `_xmpp-server`, XmppAddr),
 * §13.7.2 (validation), RFC 6125 §6.4 (DNS-ID matching, wildcard only as the whole leftmost label),
 * §6.4.4 (no CN-ID when a subjectAltName is present; we never use CN-IDs), RFC 4985 (SRVName),
 * XEP-0178 §3 (certificates for s2s SASL EXTERNAL).
 */
import type { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { domainToASCII } from "node:url";

/** Identifiers in a certificate's subjectAltName, as Node prints them (DESIGN.md §6). */
export interface SanIdentifiers {
  readonly dns: readonly string[];
  /** SRVName values (RFC 4985), e.g. "_xmpp-server.example.org". */
  readonly srv: readonly string[];
  /** id-on-xmppAddr values (RFC 6120 §13.7.1.4). */
  readonly xmppAddr: readonly string[];
}

/**
 * Splits Node's `subjectAltName` string ("DNS:a, othername:XmppAddr:b, ...") into identifiers.
 * Node writes a value that contains a comma or quote as a JSON string; those are decoded.
 */
export function parseSubjectAltName(text: string | undefined): SanIdentifiers {
  const dns: string[] = [];
  const srv: string[] = [];
  const xmppAddr: string[] = [];
  if (!text) return { dns, srv, xmppAddr };
  for (const entry of splitEntries(text)) {
    if (entry.startsWith("DNS:")) dns.push(unquote(entry.slice(4)));
    else if (entry.startsWith("othername:XmppAddr:")) xmppAddr.push(unquote(entry.slice(19)));
    else if (entry.startsWith("othername:SRVName:")) srv.push(unquote(entry.slice(18)));
  }
  return { dns, srv, xmppAddr };
}

function splitEntries(text: string): string[] {
  const out: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"' && text[i - 1] !== "\\") quoted = !quoted;
    if (!quoted && c === "," && text[i + 1] === " ") {
      out.push(current);
      current = "";
      i++;
      continue;
    }
    current += c;
  }
  if (current) out.push(current);
  return out;
}

function unquote(value: string): string {
  if (!value.startsWith('"')) return value;
  try {
    return JSON.parse(value) as string;
  } catch {
    return value;
  }
}

export type IdentityMatch = "DNS-ID" | "SRV-ID" | "XmppAddr";

/** RFC 6120 §13.7.2.1: which identifier (if any) makes the certificate valid for `domain`. */
export function matchDomain(cert: X509Certificate, domain: string): IdentityMatch | undefined {
  const ascii = domainToASCII(domain).toLowerCase();
  if (!ascii) return undefined;
  const sans = parseSubjectAltName(cert.subjectAltName);
  // RFC 6120 §13.7.1.4: an XmppAddr holds the domain itself (no wildcards), in its U-label form.
  if (sans.xmppAddr.some((a) => domainToASCII(a).toLowerCase() === ascii)) return "XmppAddr";
  // RFC 6120 §13.7.1.2.1 / RFC 4985: SRV-ID for the s2s service.
  if (sans.srv.some((s) => s.toLowerCase() === `_xmpp-server.${ascii}`)) return "SRV-ID";
  // RFC 6125 §6.4: DNS-ID; never the subject CN, a wildcard only as a whole leftmost label.
  if (cert.checkHost(ascii, { subject: "never", partialWildcards: false }) !== undefined) return "DNS-ID";
  return undefined;
}

/** What we know about a peer's certificate on one TLS connection. */
export interface PeerCertificate {
  /** The leaf certificate, if the peer sent one. */
  readonly cert: X509Certificate | undefined;
  /** The chain verified against our trust anchors. */
  readonly chainValid: boolean;
  /** Why it did not (OpenSSL's code, e.g. DEPTH_ZERO_SELF_SIGNED_CERT), or "no certificate". */
  readonly chainError: string | undefined;
}

/**
 * Reads the peer certificate of a TLS socket once. COMPAT: Node 20 returns the peer
 * X509Certificate of a client-side TLSSocket only on the first call, so callers keep this result.
 */
export function peerCertificate(socket: tls.TLSSocket): PeerCertificate {
  const cert = socket.getPeerX509Certificate();
  if (!cert) return { cert: undefined, chainValid: false, chainError: "no certificate" };
  const error = socket.authorizationError;
  return {
    cert,
    chainValid: socket.authorized,
    chainError: socket.authorized ? undefined : String(error ?? "not verified"),
  };
}

/** Valid for `domain`: a verified chain and a matching identifier. Otherwise the reason. */
export function checkPeer(
  peer: PeerCertificate | undefined,
  domain: string,
): { ok: true; match: IdentityMatch } | { ok: false; reason: string } {
  if (!peer?.cert) return { ok: false, reason: "the peer sent no certificate" };
  if (!peer.chainValid) return { ok: false, reason: `certificate not trusted (${peer.chainError})` };
  const match = matchDomain(peer.cert, domain);
  if (!match) {
    return {
      ok: false,
      reason: `certificate name mismatch: ${domain} is not in ${peer.cert.subjectAltName ?? peer.cert.subject}`,
    };
  }
  return { ok: true, match };
}

/** Trust anchors for peer certificates: Node's (system) roots plus the PEM bundle in `caFile`. */
export function trustAnchors(caFile: string | undefined): string[] {
  const anchors = [...tls.rootCertificates];
  if (!caFile) return anchors;
  let pem: string;
  try {
    pem = readFileSync(caFile, "utf8");
  } catch (err) {
    throw new Error(`cannot read s2s.ca_file ${caFile}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`s2s.ca_file ${caFile} holds no PEM certificate`);
  return [...anchors, ...blocks];
}
