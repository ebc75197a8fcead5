/**
 * Certificates: first-start generation, reuse, regeneration for another domain, operator-supplied
 * pairs and their error messages, test CA issuance.
 * References: RFC 6120 §13.7.1.4 (XmppAddr), RFC 4985 (SRVName), RFC 5280 §4.2.1.6 (SAN).
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { copyFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import type { Config } from "../config.ts";
import { silentLogger } from "../observability/logger.ts";
import { CertificateError, createTestCa, ensureCertificate, issueCertificate } from "./certs.ts";

type CertConfig = Pick<Config, "domain" | "data_dir" | "tls">;

function capturingLogger(): { log: pino.Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: "debug" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { log, lines };
}

describe("ensureCertificate", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "hanse-certs-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("generates a self-signed certificate on first start, then reuses it", async () => {
    const config: CertConfig = { domain: "example.com", data_dir: dir, tls: {} };
    const first = await ensureCertificate(config, silentLogger());
    assert.equal(first.generated, true);
    assert.equal(first.path.cert, join(dir, "certs", "example.com.crt"));
    assert.equal(first.path.key, join(dir, "certs", "example.com.key"));
    assert.equal(await readFile(first.path.cert, "utf8"), first.certPem);
    assert.equal(await readFile(first.path.key, "utf8"), first.keyPem);
    assert.equal((await stat(first.path.key)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, "certs"))).mode & 0o777, 0o700);

    const x509 = new X509Certificate(first.certPem);
    assert.equal(x509.subject, "CN=example.com");
    assert.equal(x509.ca, false);
    const san = x509.subjectAltName ?? "";
    assert.match(san, /DNS:example\.com(,|$)/);
    assert.match(san, /DNS:\*\.example\.com/);
    assert.match(san, /othername:XmppAddr:example\.com/); // RFC 6120 §13.7.1.4
    assert.match(san, /othername:SRVName:_xmpp-client\.example\.com/);
    assert.equal(x509.checkHost("example.com"), "example.com");
    assert.equal(x509.checkHost("registry.example.com"), "*.example.com"); // components
    assert.equal(x509.fingerprint256, first.fingerprint256);
    // ~10 years, starting a day in the past.
    const from = Date.parse(x509.validFrom);
    const to = Date.parse(x509.validTo);
    assert.ok(from < Date.now() - 23 * 3600_000 && from > Date.now() - 25 * 3600_000);
    assert.ok(to - from > 3640 * 86400_000);
    // Random positive serial.
    assert.match(x509.serialNumber, /^[4-7][0-9A-F]{31}$/);

    const second = await ensureCertificate(config, silentLogger());
    assert.equal(second.generated, false);
    assert.equal(second.fingerprint256, first.fingerprint256);
    assert.equal(second.keyPem, first.keyPem);
  });

  test("another domain gets its own pair", async () => {
    const a = await ensureCertificate({ domain: "example.com", data_dir: dir, tls: {} }, silentLogger());
    const b = await ensureCertificate({ domain: "other.example", data_dir: dir, tls: {} }, silentLogger());
    assert.equal(b.generated, true);
    assert.notEqual(a.fingerprint256, b.fingerprint256);
    assert.equal(b.path.cert, join(dir, "certs", "other.example.crt"));
    assert.ok(new X509Certificate(b.certPem).subjectAltName?.includes("XmppAddr:other.example"));
  });

  test("a stored certificate that does not cover the domain is replaced with a warning", async () => {
    const certs = join(dir, "certs");
    const a = await ensureCertificate({ domain: "example.com", data_dir: dir, tls: {} }, silentLogger());
    await copyFile(a.path.cert, join(certs, "wrong.example.crt"));
    await copyFile(a.path.key, join(certs, "wrong.example.key"));
    const { log, lines } = capturingLogger();
    const fixed = await ensureCertificate({ domain: "wrong.example", data_dir: dir, tls: {} }, log);
    assert.equal(fixed.generated, true);
    assert.ok(new X509Certificate(fixed.certPem).checkHost("wrong.example"));
    const warning = lines.find((l) => l.level === 40);
    assert.ok(warning, "expected a warning");
    assert.match(JSON.stringify(warning), /does not cover wrong\.example/);
    // The old files are kept aside, not deleted.
    const files = await readdir(certs);
    assert.ok(files.some((f) => f.startsWith("wrong.example.crt.old-")));
  });

  test("a stored key that does not match is replaced", async () => {
    const certs = join(dir, "certs");
    const other = await issueCertificate({ names: ["mismatch.example"] });
    const a = await ensureCertificate({ domain: "mismatch.example", data_dir: dir, tls: {} }, silentLogger());
    await writeFile(join(certs, "mismatch.example.key"), other.keyPem, { mode: 0o600 });
    const b = await ensureCertificate({ domain: "mismatch.example", data_dir: dir, tls: {} }, silentLogger());
    assert.equal(b.generated, true);
    assert.notEqual(a.fingerprint256, b.fingerprint256);
  });

  test("Unicode and IP-literal domains", async () => {
    const idn = await ensureCertificate({ domain: "bücher.example", data_dir: dir, tls: {} }, silentLogger());
    const x = new X509Certificate(idn.certPem);
    assert.match(x.subjectAltName ?? "", /DNS:xn--bcher-kva\.example/);
    assert.match(x.subjectAltName ?? "", /XmppAddr:bücher\.example/);
    assert.equal(idn.path.cert, join(dir, "certs", "xn--bcher-kva.example.crt"));

    const ip = await ensureCertificate({ domain: "127.0.0.1", data_dir: dir, tls: {} }, silentLogger());
    assert.equal(new X509Certificate(ip.certPem).checkIP("127.0.0.1"), "127.0.0.1");
  });

  describe("configured tls.cert / tls.key", () => {
    let pair: { cert: string; key: string };
    let otherKey: string;
    before(async () => {
      const issued = await issueCertificate({ names: ["configured.example"] });
      const other = await issueCertificate({ names: ["configured.example"] });
      pair = { cert: join(dir, "server.crt"), key: join(dir, "server.key") };
      await writeFile(pair.cert, issued.certPem);
      await writeFile(pair.key, issued.keyPem);
      otherKey = join(dir, "other.key");
      await writeFile(otherKey, other.keyPem);
    });

    test("are loaded as they are", async () => {
      const m = await ensureCertificate(
        { domain: "configured.example", data_dir: dir, tls: { cert: pair.cert, key: pair.key } },
        silentLogger(),
      );
      assert.equal(m.generated, false);
      assert.deepEqual(m.path, pair);
      assert.equal(m.certPem, await readFile(pair.cert, "utf8"));
    });

    test("a certificate for another domain only warns", async () => {
      const { log, lines } = capturingLogger();
      const m = await ensureCertificate(
        { domain: "elsewhere.example", data_dir: dir, tls: { ...pair } },
        log,
      );
      assert.equal(m.generated, false);
      assert.ok(lines.some((l) => l.level === 40 && /does not cover/.test(l.msg)));
    });

    test("a key that does not match names both files", async () => {
      await assert.rejects(
        ensureCertificate(
          { domain: "configured.example", data_dir: dir, tls: { cert: pair.cert, key: otherKey } },
          silentLogger(),
        ),
        (err: Error) => {
          assert.ok(err instanceof CertificateError);
          assert.equal(
            err.message,
            `TLS key file ${otherKey} does not match the certificate in ${pair.cert}`,
          );
          return true;
        },
      );
    });

    test("an invalid PEM names the file", async () => {
      const bad = join(dir, "bad.crt");
      await writeFile(bad, "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n");
      await assert.rejects(
        ensureCertificate(
          { domain: "configured.example", data_dir: dir, tls: { cert: bad, key: pair.key } },
          silentLogger(),
        ),
        new RegExp(`^CertificateError: TLS certificate file ${bad} is not a valid PEM certificate`),
      );
      await assert.rejects(
        ensureCertificate(
          { domain: "configured.example", data_dir: dir, tls: { cert: pair.cert, key: bad } },
          silentLogger(),
        ),
        new RegExp(`^CertificateError: TLS key file ${bad} is not a valid unencrypted PEM private key`),
      );
    });

    test("an unreadable file names the file", async () => {
      const missing = join(dir, "missing.crt");
      await assert.rejects(
        ensureCertificate(
          { domain: "configured.example", data_dir: dir, tls: { cert: missing, key: pair.key } },
          silentLogger(),
        ),
        { name: "CertificateError", message: `cannot read TLS certificate file ${missing}: ENOENT` },
      );
    });
  });
});

describe("issueCertificate", () => {
  test("signs with a test CA", async () => {
    const ca = await createTestCa();
    const caX509 = new X509Certificate(ca.certPem);
    assert.equal(caX509.ca, true);
    const leaf = await issueCertificate({ names: ["a.example", "*.a.example"], ca });
    const x = new X509Certificate(leaf.certPem);
    assert.equal(x.issuer, "CN=Hanse Test CA");
    assert.ok(x.checkIssued(caX509));
    assert.ok(x.verify(caX509.publicKey));
    assert.match(x.subjectAltName ?? "", /XmppAddr:a\.example/);
    assert.doesNotMatch(x.subjectAltName ?? "", /XmppAddr:\*/);
    // X509Certificate.keyUsage lists the extended key usages: serverAuth, clientAuth.
    assert.deepEqual(x.keyUsage, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
  });

  test("refuses an empty name list", async () => {
    await assert.rejects(issueCertificate({ names: [] }), CertificateError);
  });
});
