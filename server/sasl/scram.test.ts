/**
 * SCRAM server tests: the RFC 5802 §5 and RFC 7677 §3 example exchanges, full exchanges for the
 * four variants, every failure path, and the mechanism list.
 * References: RFC 5802, RFC 7677, RFC 9266, RFC 5929 §4, RFC 6120 §6.
 */
import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import saslprep from "@mongodb-js/saslprep";
import XmppJsScramSha1 from "sasl-scram-sha-1";
import { SaslFailure } from "../xml/errors.ts";
import type { SaslContext, SaslStep, ScramCredentials } from "./mechanism.ts";
import { checkAuthzid, createSaslMechanisms, findMechanism, selectMechanisms } from "./mechanisms.ts";
import { type ScramHash, scramFactory } from "./scram.ts";

/** Test-only: what server/accounts/scram-credentials.ts derives (RFC 5802 §3). */
function derive(
  password: string,
  hash: ScramHash,
  salt = randomBytes(16),
  iterations = 4096,
): ScramCredentials {
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

interface CtxOptions {
  secure?: boolean;
  exporter?: Buffer;
  endPoint?: Buffer;
  users?: Record<string, string>;
  creds?: ScramCredentials[];
}

function makeCtx(opts: CtxOptions = {}): SaslContext & { lookups: string[] } {
  const lookups: string[] = [];
  const store = new Map<string, ScramCredentials>();
  for (const [user, password] of Object.entries(opts.users ?? { juliet: "r0m30myr0m30" })) {
    store.set(`${user}/sha1`, derive(password, "sha1"));
    store.set(`${user}/sha256`, derive(password, "sha256"));
  }
  for (const c of opts.creds ?? []) store.set(`user/${c.hash}`, c);
  return {
    lookups,
    secure: opts.secure ?? true,
    channelBinding: (type) => (type === "tls-exporter" ? opts.exporter : opts.endPoint),
    credentials: async (username, hash) => {
      lookups.push(username);
      return store.get(`${username}/${hash}`);
    },
  };
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64");
const H = (hash: ScramHash, data: Buffer) => createHash(hash).update(data).digest();
const HMAC = (hash: ScramHash, key: Buffer, data: string) => createHmac(hash, key).update(data).digest();

interface ExchangeOptions {
  hash?: ScramHash;
  plus?: boolean;
  gs2?: string;
  user?: string;
  password?: string;
  cbData?: Buffer;
  ctx?: SaslContext;
  /** Rewrites the client-final-message-without-proof before it is signed. */
  tamper?: (withoutProof: string) => string;
}

/** A minimal client (node:crypto) to drive the server through a full exchange. */
async function exchange(o: ExchangeOptions = {}): Promise<SaslStep & { verified?: boolean }> {
  const hash = o.hash ?? "sha256";
  const plus = o.plus ?? false;
  const gs2 = o.gs2 ?? (plus ? "p=tls-exporter,," : "n,,");
  const ctx = o.ctx ?? makeCtx({ exporter: plus ? Buffer.alloc(32, 7) : undefined });
  const mech = scramFactory(hash, plus).create(ctx);
  const bare = `n=${o.user ?? "juliet"},r=clientnonce123`;
  const challenge = await mech.step(Buffer.from(gs2 + bare));
  assert.equal(challenge.kind, "challenge");
  const serverFirst = challenge.data!.toString();
  const attrs = Object.fromEntries(serverFirst.split(",").map((a) => [a[0], a.slice(2)]));
  const cbData = o.cbData ?? (plus ? Buffer.alloc(32, 7) : Buffer.alloc(0));
  let withoutProof = `c=${b64(Buffer.concat([Buffer.from(gs2), cbData]))},r=${attrs["r"]}`;
  if (o.tamper) withoutProof = o.tamper(withoutProof);
  const salted = pbkdf2Sync(
    saslprep(o.password ?? "r0m30myr0m30"),
    Buffer.from(attrs["s"]!, "base64"),
    Number(attrs["i"]),
    hash === "sha1" ? 20 : 32,
    hash,
  );
  const clientKey = HMAC(hash, salted, "Client Key");
  const authMessage = `${bare},${serverFirst},${withoutProof}`;
  const signature = HMAC(hash, H(hash, clientKey), authMessage);
  const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
  const result = await mech.step(Buffer.from(`${withoutProof},p=${proof.toString("base64")}`));
  if (result.kind !== "success") return result;
  const expected = HMAC(hash, HMAC(hash, salted, "Server Key"), authMessage);
  return { ...result, verified: result.data?.toString() === `v=${expected.toString("base64")}` };
}

async function rejects(promise: Promise<unknown>, condition: string, text?: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof SaslFailure, `expected SaslFailure, got ${String(err)}`);
    assert.equal(err.condition, condition);
    if (text !== undefined) assert.equal(err.text, text);
    return true;
  });
}

describe("RFC test vectors", () => {
  test("RFC 5802 §5 SCRAM-SHA-1 example", async () => {
    const salt = Buffer.from("QSXCR+Q6sek8bf92", "base64");
    const ctx = makeCtx({ users: {}, creds: [derive("pencil", "sha1", salt, 4096)] });
    const mech = scramFactory("sha1", false, { nonce: () => "3rfcNHYJY1ZVvWVs7j" }).create(ctx);
    const first = await mech.step(Buffer.from("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"));
    assert.equal(first.kind, "challenge");
    assert.equal(
      first.data?.toString(),
      "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    );
    const final = await mech.step(
      Buffer.from("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
    );
    assert.deepEqual(final, {
      kind: "success",
      username: "user",
      data: Buffer.from("v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
    });
  });

  test("RFC 7677 §3 SCRAM-SHA-256 example", async () => {
    const salt = Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64");
    const ctx = makeCtx({ users: {}, creds: [derive("pencil", "sha256", salt, 4096)] });
    const mech = scramFactory("sha256", false, { nonce: () => "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }).create(ctx);
    const first = await mech.step(Buffer.from("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
    assert.equal(
      first.data?.toString(),
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    );
    const final = await mech.step(
      Buffer.from(
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," +
          "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
      ),
    );
    assert.equal(final.kind, "success");
    assert.equal(final.data?.toString(), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
  });
});

describe("full exchanges", () => {
  for (const hash of ["sha1", "sha256"] as const) {
    for (const plus of [false, true]) {
      test(`SCRAM ${hash} plus=${plus}`, async () => {
        const result = await exchange({ hash, plus });
        assert.equal(result.kind, "success");
        assert.equal(result.kind === "success" && result.username, "juliet");
        assert.equal(result.verified, true);
      });
    }
  }

  test("tls-server-end-point binding when the context offers it", async () => {
    const endPoint = Buffer.alloc(32, 9);
    const ctx = makeCtx({ endPoint });
    const result = await exchange({ plus: true, gs2: "p=tls-server-end-point,,", cbData: endPoint, ctx });
    assert.equal(result.verified, true);
  });

  test("y flag is fine when the server cannot bind", async () => {
    const result = await exchange({ gs2: "y,,", ctx: makeCtx() });
    assert.equal(result.verified, true);
  });

  test("user name: =2C/=3D decoding, SASLprep and case mapping", async () => {
    const ctx = makeCtx({ users: { "a,b=c": "pw", ix: "pw2" } });
    assert.equal((await exchange({ ctx, user: "a=2Cb=3Dc", password: "pw" })).verified, true);
    // U+00AD (soft hyphen) maps to nothing in SASLprep; "IX" case-maps to the localpart "ix".
    const r = await exchange({ ctx, user: "I\u00ADX", password: "pw2" });
    assert.equal(r.kind === "success" && r.username, "ix");
    assert.deepEqual(ctx.lookups, ["a,b=c", "ix"]);
  });

  test("authzid equal to the bare JID is returned (normalised)", async () => {
    const r = await exchange({ gs2: "n,a=Juliet@Example.com," });
    assert.equal(r.kind === "success" && r.authzid, "juliet@example.com");
    assert.doesNotThrow(() => checkAuthzid(r as { username: string; authzid: string }, "example.com"));
    assert.throws(
      () => checkAuthzid(r as { username: string; authzid: string }, "other.example"),
      (e: unknown) => e instanceof SaslFailure && e.condition === "invalid-authzid",
    );
  });

  test("extensions after the nonce are ignored", async () => {
    const result = await exchange({ tamper: (m) => `${m},x=whatever` });
    assert.equal(result.verified, true);
  });
});

describe("interop", () => {
  test("xmpp.js's own SCRAM-SHA-1 client (an independent implementation)", async () => {
    const ctx = makeCtx({ users: { romeo: "n\u00e9ige" } });
    const server = scramFactory("sha1", false).create(ctx);
    const client = new XmppJsScramSha1();
    const creds = { username: "romeo", password: "n\u00e9ige" };
    const first = await server.step(Buffer.from(await client.response(creds), "latin1"));
    client.challenge(first.kind === "challenge" ? first.data.toString() : "");
    const final = await server.step(Buffer.from(await client.response(creds), "latin1"));
    assert.equal(final.kind === "success" && final.username, "romeo");
    const expected = Buffer.from((client as unknown as { _serverSignature: Uint8Array })._serverSignature);
    assert.equal(final.data?.toString(), `v=${expected.toString("base64")}`);
  });
});

describe("failures", () => {
  test("wrong password and unknown user give the same answer at the proof step", async () => {
    await rejects(exchange({ password: "wrong" }), "not-authorized", undefined);
    await rejects(exchange({ user: "nobody" }), "not-authorized", undefined);
    // A name that cannot be a localpart (RFC 7622 excludes "@") walks the unknown-user path too.
    await rejects(exchange({ user: "no@body" }), "not-authorized", undefined);
  });

  test("unknown users get a stable, plausible salt and iteration count", async () => {
    const opts = { fakeSecret: Buffer.alloc(32, 1) };
    const challenge = async (user: string) =>
      (
        await scramFactory("sha256", false, opts)
          .create(makeCtx())
          .step(Buffer.from(`n,,n=${user},r=abc`))
      )
        .data!.toString()
        .split(",")
        .slice(1)
        .join(",");
    const a = await challenge("nobody");
    assert.equal(a, await challenge("nobody"));
    assert.notEqual(a, await challenge("somebody"));
    assert.match(a, /^s=[A-Za-z0-9+/]{22}==,i=4096$/);
  });

  test("wrong channel-binding data", async () => {
    await rejects(
      exchange({ plus: true, cbData: Buffer.alloc(32, 8) }),
      "not-authorized",
      "channel binding mismatch",
    );
    // c= must carry the gs2 header that was actually sent
    await rejects(
      exchange({ tamper: (m) => m.replace(/^c=[^,]*/, `c=${b64("y,,")}`) }),
      "not-authorized",
      "channel binding mismatch",
    );
  });

  test("y flag while the server offers -PLUS is a downgrade", async () => {
    const ctx = makeCtx({ exporter: Buffer.alloc(32, 7) });
    await rejects(exchange({ gs2: "y,,", ctx }), "not-authorized", "server supports channel binding");
  });

  test("p= with a non-PLUS mechanism, and n/y with a -PLUS one", async () => {
    const ctx = makeCtx({ exporter: Buffer.alloc(32, 7) });
    await rejects(exchange({ gs2: "p=tls-exporter,,", ctx }), "malformed-request");
    await rejects(exchange({ plus: true, gs2: "n,,", ctx }), "malformed-request");
    await rejects(exchange({ plus: true, gs2: "y,,", ctx }), "malformed-request");
  });

  test("unsupported or unavailable channel-binding type", async () => {
    await rejects(exchange({ plus: true, gs2: "p=tls-unique,," }), "malformed-request");
    await rejects(exchange({ plus: true, gs2: "p=tls-server-end-point,," }), "malformed-request");
  });

  test("bad nonce", async () => {
    await rejects(exchange({ tamper: (m) => m.replace(/,r=/, ",r=x") }), "not-authorized", "nonce mismatch");
    await rejects(exchange({ tamper: (m) => m.replace(/,r=clientnonce123/, ",r=") }), "not-authorized");
  });

  test("invalid authzid", async () => {
    await rejects(exchange({ gs2: "n,a=romeo@example.com," }), "invalid-authzid");
    await rejects(exchange({ gs2: "n,a=juliet@example.com/balcony," }), "invalid-authzid");
    await rejects(exchange({ gs2: "n,a=not a jid@," }), "invalid-authzid");
  });

  test("credential store errors are temporary", async () => {
    const ctx: SaslContext = {
      secure: true,
      channelBinding: () => undefined,
      credentials: async () => {
        throw new Error("db down");
      },
    };
    await rejects(
      scramFactory("sha1", false).create(ctx).step(Buffer.from("n,,n=u,r=abc")),
      "temporary-auth-failure",
    );
  });

  const badFirst: [string, string | Buffer][] = [
    ["empty", ""],
    ["no gs2 header", "n=user,r=abc"],
    ["unknown flag", "x,,n=user,r=abc"],
    ["bad authzid syntax", "n,z=foo,n=user,r=abc"],
    ["mandatory extension", "n,,m=ext,n=user,r=abc"],
    ["missing nonce", "n,,n=user"],
    ["empty user", "n,,n=,r=abc"],
    ["bad escape", "n,,n=us=5Aer,r=abc"],
    ["nonce with a bad char", "n,,n=user,r=a\u00e9"],
    ["bad extension", "n,,n=user,r=abc,xyz"],
    ["prohibited SASLprep char", "n,,n=us\u0007er,r=abc"],
    ["invalid UTF-8", Buffer.from([0x6e, 0x2c, 0x2c, 0x6e, 0x3d, 0xff, 0x2c, 0x72, 0x3d, 0x61])],
    ["too long", `n,,n=user,r=${"a".repeat(9000)}`],
  ];
  for (const [name, message] of badFirst) {
    test(`malformed client-first: ${name}`, async () => {
      const mech = scramFactory("sha256", false).create(makeCtx());
      await rejects(mech.step(Buffer.from(message)), "malformed-request");
    });
  }

  const badFinal: [string, (m: string) => string][] = [
    ["missing proof", (m) => m.replace(/,p=.*$/, "")],
    ["proof not base64", (m) => m.replace(/,p=.*$/, ",p=!!!!")],
    ["proof wrong length", (m) => m.replace(/,p=.*$/, ",p=AAAA")],
    ["missing c=", (m) => m.replace(/^c=[^,]*,/, "")],
    ["c= not base64", (m) => m.replace(/^c=[^,]*/, "c=b-ws")],
  ];
  for (const [name, rewrite] of badFinal) {
    test(`malformed client-final: ${name}`, async () => {
      const mech = scramFactory("sha256", false).create(makeCtx());
      const first = (await mech.step(Buffer.from("n,,n=juliet,r=abc"))).data!.toString();
      const nonce = first.split(",")[0]!.slice(2);
      const final = `c=biws,r=${nonce},p=${b64(Buffer.alloc(32))}`;
      await rejects(mech.step(Buffer.from(rewrite(final))), "malformed-request");
    });
  }

  test("no step after the exchange ended", async () => {
    const mech = scramFactory("sha256", false).create(makeCtx());
    await rejects(mech.step(Buffer.from("garbage")), "malformed-request");
    await rejects(mech.step(Buffer.from("n,,n=juliet,r=abc")), "malformed-request", "the exchange is over");
  });
});

describe("mechanism list", () => {
  const factories = createSaslMechanisms();
  test("in the clear: SCRAM only, no PLAIN, no -PLUS", () => {
    assert.deepEqual(selectMechanisms(makeCtx({ secure: false }), factories), [
      "SCRAM-SHA-256",
      "SCRAM-SHA-1",
    ]);
  });
  test("TLS without channel binding: adds PLAIN", () => {
    assert.deepEqual(selectMechanisms(makeCtx(), factories), ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]);
  });
  test("TLS with channel binding: everything, best first", () => {
    const ctx = makeCtx({ exporter: Buffer.alloc(32) });
    assert.deepEqual(selectMechanisms(ctx, factories), [
      "SCRAM-SHA-256-PLUS",
      "SCRAM-SHA-1-PLUS",
      "SCRAM-SHA-256",
      "SCRAM-SHA-1",
      "PLAIN",
    ]);
    assert.equal(findMechanism("SCRAM-SHA-1-PLUS", ctx, factories)?.name, "SCRAM-SHA-1-PLUS");
    assert.equal(findMechanism("SCRAM-SHA-1-PLUS", makeCtx(), factories), undefined);
    assert.equal(findMechanism("DIGEST-MD5", ctx, factories), undefined);
  });
  test("unknown factories keep their order after the known ones", () => {
    const external = { name: "EXTERNAL", available: () => true, create: () => ({}) as never };
    assert.deepEqual(selectMechanisms(makeCtx({ secure: false }), [external, ...factories]), [
      "SCRAM-SHA-256",
      "SCRAM-SHA-1",
      "EXTERNAL",
    ]);
  });
});
