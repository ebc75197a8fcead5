/**
 * Server certificates: load the operator's PEM pair, or make (once) and reuse a self-signed one
 * for the domain under data_dir/certs. Also issues certificates from a throwaway CA for tests
 * (s2s with real certificate checks).
 *
 * References: RFC 6120 §13.7.1 (certificate contents: §13.7.1.2 server certificates, §13.7.1.4
 * XmppAddr), RFC 4985 (SRVName), RFC 5280 §4.1/§4.2 (X.509 fields and extensions), RFC 6125
 * (identity checks, done by Node's X509Certificate.checkHost), DESIGN.md §1.7 (self-signed on
 * first start), §6 (Node prints XmppAddr/SRVName; it cannot create certificates, node-forge does).
 *
 * Keys are made by node:crypto (native, async: ~60–250 ms for RSA-2048 on this machine kind,
 * where forge's pure-JS generator takes seconds and blocks the loop). forge only builds and signs
 * the certificate. RSA because forge cannot sign with EC keys.
 */
import { createPrivateKey, generateKeyPair, randomBytes, X509Certificate } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { domainToASCII } from "node:url";
import { promisify } from "node:util";
import forge from "node-forge";
import type { Config } from "../config.ts";
import type { Logger } from "../observability/logger.ts";

const { asn1, pki } = forge;
const generateKeyPairAsync = promisify(generateKeyPair);

/** RFC 6120 §13.7.1.4: id-on-xmppAddr. */
export const OID_XMPP_ADDR = "1.3.6.1.5.5.7.8.5";
/** RFC 4985 §2: id-on-dnsSRV (SRVName). */
export const OID_SRV_NAME = "1.3.6.1.5.5.7.8.7";

const DAY_MS = 24 * 60 * 60 * 1000;
/** Self-signed certificates live ~10 years; nobody rotates them by hand. */
const DEFAULT_VALIDITY_DAYS = 3650;
/** A stored self-signed certificate this close to expiry is replaced at start. */
const RENEW_BEFORE_DAYS = 30;

export class CertificateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CertificateError";
  }
}

/** A PEM certificate (chain) and its unencrypted PEM private key. */
export interface PemPair {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface IssuedCertificate extends PemPair {
  /** SHA-256 fingerprint of the (leaf) certificate, colon-separated hex as Node prints it. */
  readonly fingerprint256: string;
}

export interface CertificateMaterial extends IssuedCertificate {
  readonly path: { readonly cert: string; readonly key: string };
  /** True when this call made a new self-signed pair. */
  readonly generated: boolean;
}

export interface IssueOptions {
  /**
   * DNS names (or IP addresses) the certificate is for; the first becomes the subject CN.
   * Unicode names are written as A-labels. Wildcards ("*.example.com") are allowed.
   */
  readonly names: readonly string[];
  /** XmppAddr otherNames (RFC 6120 §13.7.1.4). Default: every non-wildcard DNS name. */
  readonly xmppAddrs?: readonly string[];
  /** Add SRVNames _xmpp-client./_xmpp-server. for these domains (RFC 6120 §13.7.1.2.1). Default: xmppAddrs. */
  readonly srvDomains?: readonly string[];
  /** Signing CA; without one the certificate is self-signed. */
  readonly ca?: PemPair;
  readonly validityDays?: number;
  /** Make a CA certificate (basicConstraints CA:true, keyCertSign) instead of an end-entity one. */
  readonly isCa?: boolean;
  /** Subject CN override (default: the first name). */
  readonly commonName?: string;
}

/** Strips the brackets of an IPv6 literal domain ("[::1]" → "::1"). */
function bareIp(name: string): string {
  return name.startsWith("[") && name.endsWith("]") ? name.slice(1, -1) : name;
}

/** A-label form for dNSName (IA5String, RFC 5280 §4.2.1.6); wildcards keep their "*." prefix. */
function dnsName(name: string): string {
  if (name.startsWith("*.")) return `*.${dnsName(name.slice(2))}`;
  const ascii = domainToASCII(name);
  if (!ascii) throw new CertificateError(`"${name}" is not a valid DNS name`);
  return ascii;
}

function randomSerial(): string {
  // RFC 5280 §4.1.2.2: positive, at most 20 octets. Top bit clear keeps the INTEGER positive,
  // the 0x40 bit keeps the first octet non-zero (minimal DER).
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString("hex");
}

function otherName(oid: string, value: forge.asn1.Asn1): forge.asn1.Asn1 {
  // GeneralName otherName [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT ANY }.
  // Built by hand: forge's altNames writer cannot encode otherName.
  return asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes()),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [value]),
  ]);
}

function subjectAltName(opts: IssueOptions): { id: string; value: forge.asn1.Asn1 } {
  const general: forge.asn1.Asn1[] = [];
  for (const name of opts.names) {
    const ip = bareIp(name);
    if (isIP(ip)) {
      // bytesFromIP exists in forge but is missing from @types/node-forge.
      const bytes = (forge.util as unknown as { bytesFromIP(ip: string): string }).bytesFromIP(ip);
      general.push(asn1.create(asn1.Class.CONTEXT_SPECIFIC, 7, false, bytes)); // iPAddress
    } else {
      general.push(asn1.create(asn1.Class.CONTEXT_SPECIFIC, 2, false, dnsName(name))); // dNSName
    }
  }
  const xmppAddrs = opts.xmppAddrs ?? opts.names.filter((n) => !n.startsWith("*."));
  for (const addr of xmppAddrs) {
    // RFC 6120 §13.7.1.4: XmppAddr ::= UTF8String, the Unicode form of the JID.
    const utf8 = forge.util.encodeUtf8(addr);
    general.push(otherName(OID_XMPP_ADDR, asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTF8, false, utf8)));
  }
  const srvDomains = opts.srvDomains ?? xmppAddrs.filter((n) => !isIP(bareIp(n)));
  for (const domain of srvDomains) {
    // RFC 4985 §2: SRVName ::= IA5String "_Service.Name"; RFC 6120 §13.7.1.2.1 services.
    for (const service of ["_xmpp-client", "_xmpp-server"]) {
      const value = `${service}.${dnsName(domain)}`;
      general.push(
        otherName(OID_SRV_NAME, asn1.create(asn1.Class.UNIVERSAL, asn1.Type.IA5STRING, false, value)),
      );
    }
  }
  return { id: "2.5.29.17", value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, general) };
}

function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

/** Makes a key pair and a certificate for `names`, self-signed or signed by `opts.ca`. */
export async function issueCertificate(opts: IssueOptions): Promise<IssuedCertificate> {
  if (opts.names.length === 0) throw new CertificateError("issueCertificate needs at least one name");
  const { privateKey, publicKey } = await generateKeyPairAsync("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(publicKey);
  cert.serialNumber = randomSerial();
  const now = Date.now();
  // A day in the past: tolerates peers whose clocks run behind.
  cert.validity.notBefore = new Date(now - DAY_MS);
  cert.validity.notAfter = new Date(now + (opts.validityDays ?? DEFAULT_VALIDITY_DAYS) * DAY_MS);
  const cn = opts.commonName ?? opts.names[0]!;
  // forge UTF-8-encodes values tagged UTF8String itself.
  const subject = [{ shortName: "CN", value: cn, valueTagClass: asn1.Type.UTF8 }];
  cert.setSubject(subject as unknown as forge.pki.CertificateField[]);

  let signer: forge.pki.PrivateKey;
  let authorityKeyId: string;
  if (opts.ca) {
    const caCert = pki.certificateFromPem(opts.ca.certPem);
    cert.setIssuer(caCert.subject.attributes);
    signer = pki.privateKeyFromPem(opts.ca.keyPem);
    authorityKeyId = caCert.generateSubjectKeyIdentifier().getBytes();
  } else {
    cert.setIssuer(subject as unknown as forge.pki.CertificateField[]);
    signer = pki.privateKeyFromPem(privateKey);
    authorityKeyId = cert.generateSubjectKeyIdentifier().getBytes();
  }

  // RFC 5280 §4.2: a plain TLS server/client certificate, or a CA for tests.
  const extensions: unknown[] = opts.isCa
    ? [
        { name: "basicConstraints", cA: true, critical: true },
        { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
      ]
    : [
        { name: "basicConstraints", cA: false, critical: true },
        // digitalSignature: (EC)DHE key exchange and TLS 1.3; keyEncipherment: TLS 1.2 RSA kex.
        { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
        // clientAuth too: the same certificate authenticates s2s-out (RFC 6120 §13.7.1.2).
        { name: "extKeyUsage", serverAuth: true, clientAuth: true },
        subjectAltName(opts),
      ];
  extensions.push(
    { name: "subjectKeyIdentifier" },
    { name: "authorityKeyIdentifier", keyIdentifier: authorityKeyId },
  );
  cert.setExtensions(extensions as never[]);
  cert.sign(signer, forge.md.sha256.create());
  const certPem = pki.certificateToPem(cert);
  return { certPem, keyPem: privateKey, fingerprint256: fingerprintOf(certPem) };
}

/** A throwaway CA for tests (s2s with verified certificates). */
export function createTestCa(name = "Hanse Test CA"): Promise<IssuedCertificate> {
  return issueCertificate({ names: [name], commonName: name, isCa: true, xmppAddrs: [], srvDomains: [] });
}

/** True when the certificate is valid for the XMPP domain (RFC 6125 via Node's checks). */
export function certificateCovers(cert: X509Certificate, domain: string): boolean {
  const ip = bareIp(domain);
  if (isIP(ip)) return cert.checkIP(ip) !== undefined;
  const ascii = domainToASCII(domain);
  return Boolean(ascii) && cert.checkHost(ascii, { subject: "never" }) !== undefined;
}

/** Reads, parses and cross-checks a PEM pair; errors name the offending file. */
async function loadPair(
  certFile: string,
  keyFile: string,
): Promise<{ pair: PemPair; x509: X509Certificate }> {
  const read = async (file: string, what: string): Promise<string> => {
    try {
      return await readFile(file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new CertificateError(`cannot read TLS ${what} file ${file}: ${code}`);
    }
  };
  const certPem = await read(certFile, "certificate");
  const keyPem = await read(keyFile, "key");
  let x509: X509Certificate;
  try {
    // The first PEM block is the leaf; the rest of a chain is passed on to TLS untouched.
    x509 = new X509Certificate(certPem);
  } catch (err) {
    throw new CertificateError(
      `TLS certificate file ${certFile} is not a valid PEM certificate: ${(err as Error).message}`,
    );
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new CertificateError(
      `TLS key file ${keyFile} is not a valid unencrypted PEM private key: ${(err as Error).message}`,
    );
  }
  if (!x509.checkPrivateKey(key)) {
    throw new CertificateError(`TLS key file ${keyFile} does not match the certificate in ${certFile}`);
  }
  return { pair: { certPem, keyPem }, x509 };
}

/** File name for a domain: A-label form, anything odd (IPv6 colons, brackets) replaced. */
function fileBase(domain: string): string {
  const ascii = isIP(bareIp(domain)) ? bareIp(domain) : domainToASCII(domain) || domain;
  return ascii.replace(/[^a-z0-9.-]/gi, "_");
}

async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode, flag: "w" });
  await chmod(tmp, mode); // writeFile's mode only applies to a new file
  await rename(tmp, file);
}

async function moveAside(file: string): Promise<void> {
  try {
    await rename(file, `${file}.old-${Date.now()}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/**
 * Returns the certificate and key the listeners use: the configured `tls.cert`/`tls.key`, or a
 * self-signed pair in `<data_dir>/certs/<domain>.{crt,key}` made on first start and reused after.
 */
export async function ensureCertificate(
  config: Pick<Config, "domain" | "data_dir" | "tls">,
  log: Logger,
): Promise<CertificateMaterial> {
  const domain = config.domain;
  if (config.tls.cert || config.tls.key) {
    if (!config.tls.cert || !config.tls.key)
      throw new CertificateError("tls.cert and tls.key must be set together");
    const { pair, x509 } = await loadPair(config.tls.cert, config.tls.key);
    if (!certificateCovers(x509, domain)) {
      // Not fatal: the operator may front the broker with names we do not know about.
      log.warn(
        { cert: config.tls.cert, domain, subjectAltName: x509.subjectAltName },
        "TLS certificate does not cover the domain",
      );
    }
    if (Date.parse(x509.validTo) < Date.now()) {
      log.warn({ cert: config.tls.cert, validTo: x509.validTo }, "TLS certificate has expired");
    }
    log.info({ cert: config.tls.cert, fingerprint256: x509.fingerprint256 }, "loaded TLS certificate");
    return {
      ...pair,
      path: { cert: config.tls.cert, key: config.tls.key },
      fingerprint256: x509.fingerprint256,
      generated: false,
    };
  }

  const dir = join(config.data_dir, "certs");
  const base = fileBase(domain);
  const path = { cert: join(dir, `${base}.crt`), key: join(dir, `${base}.key`) };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700); // mkdir's mode is ignored when the directory already exists

  let reason = "no certificate yet";
  try {
    const { pair, x509 } = await loadPair(path.cert, path.key);
    if (!certificateCovers(x509, domain)) {
      reason = `stored certificate does not cover ${domain}`;
    } else if (Date.parse(x509.validTo) - Date.now() < RENEW_BEFORE_DAYS * DAY_MS) {
      reason = `stored certificate expires ${x509.validTo}`;
    } else {
      log.debug({ cert: path.cert, fingerprint256: x509.fingerprint256 }, "reusing self-signed certificate");
      return { ...pair, path, fingerprint256: x509.fingerprint256, generated: false };
    }
  } catch (err) {
    const missing = err instanceof CertificateError && /: ENOENT$/.test(err.message);
    if (!missing) reason = (err as Error).message;
  }
  if (reason !== "no certificate yet") {
    // Keep the old files (renamed) in case someone put them there on purpose.
    log.warn({ cert: path.cert, reason }, "replacing the stored self-signed certificate");
    await moveAside(path.cert);
    await moveAside(path.key);
  }

  const started = performance.now();
  const issued = await issueCertificate({
    names: [domain, ...(isIP(bareIp(domain)) ? [] : [`*.${domain}`])],
    xmppAddrs: [domain],
  });
  // Check what we made the way peers will see it (DESIGN.md §6: Node prints the XmppAddr).
  const x509 = new X509Certificate(issued.certPem);
  if (!certificateCovers(x509, domain) || !x509.subjectAltName?.includes(`XmppAddr:${domain}`)) {
    throw new CertificateError(`generated certificate does not cover ${domain}: ${x509.subjectAltName}`);
  }
  if (!x509.checkPrivateKey(createPrivateKey(issued.keyPem))) {
    throw new CertificateError("generated certificate does not match its key");
  }
  // Key first: a crash in between leaves no certificate, so the next start regenerates both.
  await writeAtomic(path.key, issued.keyPem, 0o600);
  await writeAtomic(path.cert, issued.certPem, 0o644);
  log.info(
    {
      cert: path.cert,
      domain,
      fingerprint256: issued.fingerprint256,
      ms: Math.round(performance.now() - started),
    },
    "generated self-signed TLS certificate",
  );
  return { ...issued, path, generated: true };
}
