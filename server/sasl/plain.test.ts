/**
 * PLAIN server tests: verification against stored SCRAM keys, TLS-only, malformed messages.
 * References: RFC 4616 §2, RFC 6120 §6.4.2, §13.9.4, RFC 5802 §3.
 */
import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import saslprep from "@mongodb-js/saslprep";
import { SaslFailure } from "../xml/errors.ts";
import type { SaslContext, ScramCredentials } from "./mechanism.ts";
import { plainFactory } from "./plain.ts";

/** Test-only: what server/accounts/scram-credentials.ts derives (RFC 5802 §3). */
function derive(password: string, hash: "sha1" | "sha256", iterations = 4096): ScramCredentials {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(saslprep(password), salt, iterations, hash === "sha1" ? 20 : 32, hash);
  const clientKey = createHmac(hash, salted).update("Client Key").digest();
  return {
    hash,
    salt,
    iterations,
    storedKey: createHash(hash).update(clientKey).digest(),
    serverKey: createHmac(hash, salted).update("Server Key").digest(),
  };
}

function makeCtx(secure = true, creds: ScramCredentials[] = [derive("r0m30myr0m30", "sha256")]): SaslContext {
  return {
    secure,
    channelBinding: () => undefined,
    credentials: async (username, hash) =>
      username === "juliet" ? creds.find((c) => c.hash === hash) : undefined,
  };
}

const run = (message: string | Buffer, ctx = makeCtx()) =>
  plainFactory().create(ctx).step(Buffer.from(message));

async function rejects(promise: Promise<unknown>, condition: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof SaslFailure && err.condition === condition);
}

describe("PLAIN", () => {
  test("success against SHA-256 credentials", async () => {
    assert.deepEqual(await run("\0juliet\0r0m30myr0m30"), { kind: "success", username: "juliet" });
  });

  test("falls back to SHA-1 credentials", async () => {
    const ctx = makeCtx(true, [derive("r0m30myr0m30", "sha1")]);
    assert.deepEqual(await run("\0juliet\0r0m30myr0m30", ctx), { kind: "success", username: "juliet" });
  });

  test("user name is case-mapped; password is SASLprepped", async () => {
    // U+00AD maps to nothing (RFC 4013 §2.2), U+00A0 to a space (RFC 4013 §2.1).
    const ctx = makeCtx(true, [derive("pass word", "sha256")]);
    assert.deepEqual(await run("\0Juliet\0pa\u00ADss\u00A0word", ctx), {
      kind: "success",
      username: "juliet",
    });
  });

  test("authzid: own bare JID accepted, anything else invalid-authzid", async () => {
    assert.deepEqual(await run("juliet@example.com\0juliet\0r0m30myr0m30"), {
      kind: "success",
      username: "juliet",
      authzid: "juliet@example.com",
    });
    await rejects(run("romeo@example.com\0juliet\0r0m30myr0m30"), "invalid-authzid");
  });

  test("wrong password and unknown user: not-authorized", async () => {
    await rejects(run("\0juliet\0wrong"), "not-authorized");
    await rejects(run("\0romeo\0r0m30myr0m30"), "not-authorized");
  });

  test("never in the clear", async () => {
    const factory = plainFactory();
    assert.equal(factory.available(makeCtx(false)), false);
    assert.equal(factory.available(makeCtx(true)), true);
    await rejects(run("\0juliet\0r0m30myr0m30", makeCtx(false)), "encryption-required");
  });

  const malformed: [string, string | Buffer][] = [
    ["no NUL", "julietr0m30"],
    ["one NUL", "juliet\0r0m30"],
    ["three NULs", "\0juliet\0r0m\u000030"],
    ["empty authcid", "\0\0r0m30"],
    ["empty password", "\0juliet\0"],
    ["password that SASLprep maps to nothing", "\0juliet\0\u00AD"],
    ["prohibited character in password", "\0juliet\0pa\u0007ss"],
    ["invalid UTF-8", Buffer.from([0, 0x6a, 0, 0xc3])],
  ];
  for (const [name, message] of malformed) {
    test(`malformed: ${name}`, async () => {
      await rejects(run(message), "malformed-request");
    });
  }

  test("only one step", async () => {
    const mech = plainFactory().create(makeCtx());
    await rejects(mech.step(Buffer.from("\0juliet\0wrong")), "not-authorized");
    await rejects(mech.step(Buffer.from("\0juliet\0r0m30myr0m30")), "malformed-request");
  });
});
