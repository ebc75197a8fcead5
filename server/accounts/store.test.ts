/**
 * The account store on both engines: lifecycle, SCRAM verifiers that work in an exchange
 * computed independently here, no password at rest, persistence across reopen.
 * References: RFC 5802 §3 and §5 (the exchange), RFC 7677, RFC 4013.
 */
import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import saslprep from "@mongodb-js/saslprep";
import { silentLogger } from "../observability/logger.ts";
import type { ScramCredentials } from "../sasl/mechanism.ts";
import type { Storage } from "../storage/db.ts";
import { openStorage, type StorageConfig } from "../storage/open.ts";
import { testEngines } from "../storage/testing.ts";
import { ACCOUNTS_MODULE, accountMigrations } from "./migrations.ts";
import { PasswordError } from "./scram-credentials.ts";
import { AccountError, type AccountStore, createAccountStore } from "./store.ts";

const log = silentLogger();

/**
 * One SCRAM exchange (RFC 5802 §3): the client side from the password alone, the server side from
 * the stored verifiers alone. True if the server accepts the client's proof and the client
 * accepts the server's signature.
 */
function scramExchange(password: string, stored: ScramCredentials): boolean {
  const h = stored.hash;
  const keyLength = h === "sha1" ? 20 : 32;
  const clientNonce = randomBytes(12).toString("base64");
  const nonce = clientNonce + randomBytes(12).toString("base64");
  const authMessage =
    `n=user,r=${clientNonce},` +
    `r=${nonce},s=${stored.salt.toString("base64")},i=${stored.iterations},` +
    `c=biws,r=${nonce}`;
  // Client.
  const salted = pbkdf2Sync(saslprep(password), stored.salt, stored.iterations, keyLength, h);
  const clientKey = createHmac(h, salted).update("Client Key").digest();
  const clientSignature = createHmac(h, createHash(h).update(clientKey).digest())
    .update(authMessage)
    .digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ clientSignature[i]!));
  const expectedServerSignature = createHmac(h, createHmac(h, salted).update("Server Key").digest())
    .update(authMessage)
    .digest();
  // Server.
  const serverClientSignature = createHmac(h, stored.storedKey).update(authMessage).digest();
  const recoveredClientKey = Buffer.from(proof.map((b, i) => b ^ serverClientSignature[i]!));
  const serverAccepts = createHash(h).update(recoveredClientKey).digest().equals(stored.storedKey);
  const serverSignature = createHmac(h, stored.serverKey).update(authMessage).digest();
  return serverAccepts && serverSignature.equals(expectedServerSignature);
}

const PASSWORD = "Pässwörd ñ 42";

for (const engine of testEngines) {
  describe(`account store (${engine.name})`, () => {
    let config: StorageConfig;
    let storage: Storage;
    let accounts: AccountStore;

    before(async () => {
      config = await engine.storageConfig();
      storage = await openStorage(config, log, { role: "broker" });
      await storage.migrate(ACCOUNTS_MODULE, accountMigrations);
      accounts = createAccountStore(storage.db);
    });
    after(() => storage.close());

    test("create, exists, list, count", async () => {
      assert.equal(await accounts.count(), 0);
      await accounts.create("zoe", PASSWORD);
      await accounts.create("alice", "another secret");
      // Callers normalise; the store does it again, harmlessly.
      await accounts.create("Émile", "third secret");
      assert.equal(await accounts.exists("alice"), true);
      assert.equal(await accounts.exists("ALICE"), true);
      assert.equal(await accounts.exists("nobody"), false);
      assert.equal(await accounts.exists("not@valid"), false);
      assert.deepEqual(await accounts.list(), ["alice", "zoe", "émile"]);
      assert.equal(await accounts.count(), 3);
    });

    test("a taken username is a clear error and changes nothing", async () => {
      const before = await accounts.credentials("alice", "sha256");
      await assert.rejects(
        () => accounts.create("alice", "different"),
        (err: unknown) =>
          err instanceof AccountError &&
          err.code === "exists" &&
          err.message === "account alice already exists",
      );
      assert.deepEqual(await accounts.credentials("alice", "sha256"), before);
    });

    test("verifiers for both hashes pass an independent SCRAM exchange", async () => {
      for (const hash of ["sha1", "sha256"] as const) {
        const creds = await accounts.credentials("zoe", hash);
        assert.ok(creds);
        assert.equal(creds.hash, hash);
        assert.equal(creds.iterations, 4096);
        assert.equal(creds.salt.length, 16);
        assert.equal(scramExchange(PASSWORD, creds), true, `${hash} with the right password`);
        assert.equal(scramExchange("wrong", creds), false, `${hash} with a wrong password`);
      }
      const sha1 = await accounts.credentials("zoe", "sha1");
      const sha256 = await accounts.credentials("zoe", "sha256");
      assert.notDeepEqual(sha1!.salt, sha256!.salt, "each hash gets its own salt");
      assert.equal(await accounts.credentials("nobody", "sha256"), undefined);
    });

    test("no column holds the password", async () => {
      const dump = [
        ...(await storage.db`select row_to_json(a)::text as j from accounts a`),
        ...(await storage.db`select row_to_json(s)::text as j from account_scram s`),
      ]
        .map((r) => r.j as string)
        .join("\n");
      assert.ok(dump.includes("zoe"), "the dump covers the account");
      for (const form of [
        PASSWORD,
        Buffer.from(PASSWORD).toString("hex"),
        Buffer.from(PASSWORD).toString("base64"),
      ]) {
        assert.equal(dump.includes(form), false, `found ${form}`);
      }
      assert.ok(!dump.toLowerCase().includes(Buffer.from(saslprep(PASSWORD)).toString("hex")));
    });

    test("setPassword replaces the verifiers", async () => {
      const old = await accounts.credentials("alice", "sha256");
      await accounts.setPassword("alice", "new secret");
      for (const hash of ["sha1", "sha256"] as const) {
        const creds = (await accounts.credentials("alice", hash))!;
        assert.equal(scramExchange("new secret", creds), true);
        assert.equal(scramExchange("another secret", creds), false);
      }
      assert.notDeepEqual((await accounts.credentials("alice", "sha256"))!.salt, old!.salt);
      await assert.rejects(
        () => accounts.setPassword("ghost", "x"),
        (err: unknown) =>
          err instanceof AccountError && err.code === "not-found" && /no account ghost/.test(err.message),
      );
      assert.equal(await accounts.exists("ghost"), false);
    });

    test("bad passwords and usernames are refused before anything is stored", async () => {
      await assert.rejects(() => accounts.create("empty", ""), PasswordError);
      await assert.rejects(() => accounts.create("bell", "ring\u0007"), /SASLprep/);
      await assert.rejects(() => accounts.setPassword("zoe", ""), PasswordError);
      await assert.rejects(
        () => accounts.create("a@b", "fine password"),
        (err: unknown) => err instanceof AccountError && err.code === "invalid-username",
      );
      assert.equal(await accounts.exists("empty"), false);
      assert.equal(await accounts.exists("bell"), false);
      assert.equal(scramExchange(PASSWORD, (await accounts.credentials("zoe", "sha1"))!), true);
    });

    test("delete removes the account and its verifiers", async () => {
      assert.equal(await accounts.delete("Émile"), true);
      assert.equal(await accounts.delete("émile"), false);
      assert.equal(await accounts.delete("not@valid"), false);
      assert.equal(await accounts.credentials("émile", "sha1"), undefined);
      const [left] = await storage.db`select count(*)::int as n from account_scram where username = 'émile'`;
      assert.equal(left!.n, 0);
      assert.deepEqual(await accounts.list(), ["alice", "zoe"]);
    });

    test("accounts survive closing and reopening the storage", async () => {
      await storage.close();
      storage = await openStorage(config, log, { role: "broker" });
      await storage.migrate(ACCOUNTS_MODULE, accountMigrations);
      accounts = createAccountStore(storage.db);
      assert.deepEqual(await accounts.list(), ["alice", "zoe"]);
      assert.equal(scramExchange(PASSWORD, (await accounts.credentials("zoe", "sha256"))!), true);
    });
  });
}
