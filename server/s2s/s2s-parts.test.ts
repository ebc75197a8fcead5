/**
 * The pieces of federation that need no network: dialback keys (XEP-0185, checked against the
 * example in XEP-0220), the persisted secret, route parsing and SRV ordering, certificate identity
 * matching, and the [s2s] configuration.
 * References: XEP-0185 §3, XEP-0220 §2.1.1 (example key), RFC 2782, XEP-0368 §3, RFC 6120 §13.7,
 * RFC 6125 §6.4.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { parseConfig } from "../config.ts";
import { issueCertificate } from "../net/certs.ts";
import { matchDomain, parseSubjectAltName } from "./certificates.ts";
import { federationAllowed } from "./config.ts";
import { dialbackKey, keyMatches, loadDialbackSecret, secretFrom } from "./dialback.ts";
import { orderSrv, parseRoute } from "./resolve.ts";

describe("dialback keys (XEP-0185)", () => {
  test("reproduce the key of XEP-0220 §2.1.1", () => {
    const secret = secretFrom("s3cr3tf0rd14lb4ck");
    const key = dialbackKey(secret, "montague.example", "capulet.example", "D60000229F");
    assert.equal(key, "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3");
    // As received: surrounded by whitespace, upper case.
    assert.ok(
      keyMatches(secret, "montague.example", "capulet.example", "D60000229F", `\n  ${key.toUpperCase()}\n`),
    );
    assert.ok(
      !keyMatches(secret, "montague.example", "capulet.example", "D60000229G", key),
      "other stream id",
    );
    assert.ok(!keyMatches(secret, "capulet.example", "montague.example", "D60000229F", key), "roles swapped");
    assert.ok(!keyMatches(secret, "montague.example", "capulet.example", "D60000229F", "abc"));
  });

  test("the secret survives a restart and is private", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hanse-dialback-"));
    const first = await loadDialbackSecret(dir);
    const second = await loadDialbackSecret(dir);
    assert.equal(first, second);
    assert.equal(statSync(join(dir, "s2s", "dialback-secret")).mode & 0o777, 0o600);
    assert.notEqual(await loadDialbackSecret(mkdtempSync(join(tmpdir(), "hanse-dialback-"))), first);
  });
});

describe("resolution", () => {
  test("route syntax", () => {
    assert.deepEqual(parseRoute("127.0.0.2:5269"), { host: "127.0.0.2", port: 5269, directTls: false });
    assert.deepEqual(parseRoute("peer.example"), { host: "peer.example", port: 5269, directTls: false });
    assert.deepEqual(parseRoute("tls://[::1]:5270"), { host: "::1", port: 5270, directTls: true });
    assert.deepEqual(parseRoute("::1"), { host: "::1", port: 5269, directTls: false });
    for (const bad of ["", "host:0", "host:99999", "host:x", "http://host", "a b:1"]) {
      assert.throws(() => parseRoute(bad), Error, bad);
    }
  });

  test("SRV: priority first, weighted within a priority, direct TLS first on a tie (XEP-0368)", () => {
    const records = [
      { host: "b", port: 5269, directTls: false, priority: 20, weight: 0 },
      { host: "a", port: 5269, directTls: false, priority: 10, weight: 0 },
      { host: "a", port: 5270, directTls: true, priority: 10, weight: 0 },
    ];
    assert.deepEqual(
      orderSrv(records, () => 0).map((t) => `${t.host}:${t.port}`),
      ["a:5270", "a:5269", "b:5269"],
    );
    const weighted = [
      { host: "light", port: 1, directTls: false, priority: 0, weight: 1 },
      { host: "heavy", port: 1, directTls: false, priority: 0, weight: 99 },
    ];
    assert.equal(orderSrv(weighted, () => 0.5)[0]!.host, "heavy");
    assert.equal(orderSrv(weighted, () => 0.001)[0]!.host, "light");
  });
});

describe("certificate identities (RFC 6120 §13.7.1.2, RFC 6125 §6.4)", () => {
  test("subjectAltName as Node prints it", () => {
    const sans = parseSubjectAltName(
      'DNS:a.test, DNS:"x, y", othername:XmppAddr:a.test, othername:SRVName:_xmpp-server.b.test',
    );
    assert.deepEqual(sans, { dns: ["a.test", "x, y"], xmppAddr: ["a.test"], srv: ["_xmpp-server.b.test"] });
  });

  test("DNS-ID with wildcards, XmppAddr, SRV-ID; never the subject CN", async () => {
    const issued = await issueCertificate({
      names: ["a.test", "*.a.test"],
      xmppAddrs: ["x.test"],
      srvDomains: ["s.test"],
    });
    const cert = new X509Certificate(issued.certPem);
    assert.equal(matchDomain(cert, "a.test"), "DNS-ID");
    assert.equal(matchDomain(cert, "muc.a.test"), "DNS-ID");
    assert.equal(matchDomain(cert, "deep.muc.a.test"), undefined);
    assert.equal(matchDomain(cert, "x.test"), "XmppAddr");
    assert.equal(matchDomain(cert, "s.test"), "SRV-ID");
    assert.equal(matchDomain(cert, "other.test"), undefined);
    // The subject CN (a.test) is never used on its own: a certificate naming another DNS-ID only.
    const other = await issueCertificate({
      names: ["z.test"],
      commonName: "a.test",
      xmppAddrs: [],
      srvDomains: [],
    });
    assert.equal(matchDomain(new X509Certificate(other.certPem), "a.test"), undefined);
  });
});

describe("[s2s] configuration", () => {
  test("defaults, routes and policy lists are validated and normalised", () => {
    const config = parseConfig({});
    assert.equal(config.s2s.port, 5269);
    assert.equal(config.s2s.require_encryption, true);
    assert.equal(config.s2s.secure_auth, false);
    const custom = parseConfig({
      s2s: { routes: { "Peer.Test": "127.0.0.2:5269" }, allow: ["A.test"], deny: ["b.test"] },
    });
    assert.deepEqual(custom.s2s.routes, { "peer.test": "127.0.0.2:5269" });
    assert.ok(federationAllowed(custom.s2s, "a.test"));
    assert.ok(!federationAllowed(custom.s2s, "b.test"));
    assert.ok(!federationAllowed(custom.s2s, "c.test"), "not on the allow list");
    assert.throws(() => parseConfig({ s2s: { routes: { "peer.test": "host:0" } } }), /s2s.routes.peer.test/);
    assert.throws(() => parseConfig({ s2s: { prot: 1 } }), /s2s.prot: unknown key/);
  });
});
