/**
 * SCRAM verifiers against the RFCs' own example exchanges, computed independently here.
 * References: RFC 5802 §5 (SCRAM-SHA-1 example), RFC 7677 §3 (SCRAM-SHA-256 example),
 * RFC 4013 (SASLprep).
 */
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { describe, test } from "node:test";
import type { ScramCredentials } from "../sasl/mechanism.ts";
import {
  deriveScramCredentials,
  PasswordError,
  preparePassword,
  verifyPassword,
} from "./scram-credentials.ts";

function xor(a: Buffer, b: Buffer): Buffer {
  return Buffer.from(a.map((byte, i) => byte ^ b[i]!));
}

/**
 * What the RFC examples call p= and v=, computed from the stored verifiers the way a server
 * does: ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage) needs the ClientKey, which only
 * the password gives, so we take it from the example's expected proof and check that it hashes
 * to the StoredKey; ServerSignature = HMAC(ServerKey, AuthMessage).
 */
function checkExample(creds: ScramCredentials, authMessage: string, proofB64: string, serverSigB64: string) {
  const clientSignature = createHmac(creds.hash, creds.storedKey).update(authMessage).digest();
  const clientKey = xor(Buffer.from(proofB64, "base64"), clientSignature);
  const storedKey = createHash(creds.hash).update(clientKey).digest();
  assert.deepEqual(storedKey, creds.storedKey, "H(ClientKey) = StoredKey");
  const serverSignature = createHmac(creds.hash, creds.serverKey).update(authMessage).digest("base64");
  assert.equal(serverSignature, serverSigB64);
}

describe("deriveScramCredentials", () => {
  test("RFC 5802 §5 SCRAM-SHA-1 example", async () => {
    const creds = await deriveScramCredentials("pencil", "sha1", {
      salt: Buffer.from("QSXCR+Q6sek8bf92", "base64"),
      iterations: 4096,
    });
    assert.equal(creds.hash, "sha1");
    assert.equal(creds.iterations, 4096);
    assert.equal(creds.storedKey.length, 20);
    const authMessage =
      "n=user,r=fyko+d2lbbFgONRv9qkxdawL," +
      "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096," +
      "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
    checkExample(creds, authMessage, "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
  });

  test("RFC 7677 §3 SCRAM-SHA-256 example", async () => {
    const creds = await deriveScramCredentials("pencil", "sha256", {
      salt: Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"),
      iterations: 4096,
    });
    assert.equal(creds.storedKey.length, 32);
    const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const authMessage =
      `n=user,r=rOprNGfwEbeRWgbNEkqO,r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,` + `c=biws,r=${nonce}`;
    checkExample(
      creds,
      authMessage,
      "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
      "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    );
  });

  test("a random 16-byte salt per derivation, 4096 iterations by default", async () => {
    const a = await deriveScramCredentials("secret", "sha256");
    const b = await deriveScramCredentials("secret", "sha256");
    assert.equal(a.salt.length, 16);
    assert.equal(a.iterations, 4096);
    assert.notDeepEqual(a.salt, b.salt);
    assert.notDeepEqual(a.storedKey, b.storedKey);
    assert.equal((await deriveScramCredentials("secret", "sha1", { iterations: 10000 })).iterations, 10000);
  });

  test("SASLprep is applied before derivation", async () => {
    const salt = Buffer.alloc(16, 1);
    // U+00AD (soft hyphen) maps to nothing; U+2168 (roman numeral nine) NFKC-normalises to "IX".
    const mapped = await deriveScramCredentials("I\u00ADX", "sha256", { salt, iterations: 4096 });
    const plain = await deriveScramCredentials("IX", "sha256", { salt, iterations: 4096 });
    const numeral = await deriveScramCredentials("\u2168", "sha256", { salt, iterations: 4096 });
    assert.deepEqual(mapped.storedKey, plain.storedKey);
    assert.deepEqual(numeral.storedKey, plain.storedKey);
  });

  test("empty and prohibited passwords are refused without quoting them", async () => {
    await assert.rejects(() => deriveScramCredentials("", "sha1"), PasswordError);
    assert.throws(() => preparePassword("\u00AD"), /empty after SASLprep/);
    for (const bad of ["bell\u0007", "\u0627\u0031"]) {
      assert.throws(
        () => preparePassword(bad),
        (err: Error) =>
          err instanceof PasswordError && !err.message.includes(bad) && /SASLprep/.test(err.message),
      );
    }
  });

  test("verifyPassword accepts the password and rejects anything else", async () => {
    const creds = await deriveScramCredentials("correct horse", "sha256", { iterations: 4096 });
    assert.equal(await verifyPassword("correct horse", creds), true);
    assert.equal(await verifyPassword("correct horsE", creds), false);
    assert.equal(await verifyPassword("bell\u0007", creds), false);
  });
});
