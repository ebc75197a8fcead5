/**
 * In-band registration before authentication (XEP-0077) with forms signed by API keys (XEP-0348):
 * the quota, and each refusal (bad signature, replayed nonce, stale timestamp, expired, revoked or
 * unknown key, unsigned form) with a clear error and no account left behind; the empty-`to` base
 * string of device libraries; the audit trail; open registration with its limit; registration
 * data, password change and removal after login; `hanse apikey`.
 * The client side (stream, signature) is written here from the XEPs, independent of server code.
 * References: XEP-0077 §3.1–§3.3, XEP-0348 §2, §3.1; RFC 5849 §3.3.
 */
import assert from "node:assert/strict";
import { createHmac, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Element, parse } from "ltx";
import { createApiKeyStore } from "../extensions/register/api-keys.ts";
import { embeddedDataDirFromTemplate, tempDataDir } from "../server/storage/testing.ts";
import { startTestBroker, type TestBroker } from "../server/testing/broker.ts";
import { runHanse } from "./support/broker-process.ts";
import { RawStream } from "./support/raw-stream.ts";
import { loginTo, xml } from "./support/xmpp-client.ts";

const NS_REGISTER = "jabber:iq:register";
const NS_DATA = "jabber:x:data";
const OAUTH1 = "urn:xmpp:xdata:signature:oauth1";

// ---------------------------------------------------------------------------------------------
// The device side, from XEP-0348 §2.

/** RFC 3986 percent-encoding of everything but unreserved characters, upper-case hex. */
const esc = (s: string) =>
  [...Buffer.from(s.normalize("NFC"), "utf8")]
    .map((b) =>
      /[A-Za-z0-9\-._~]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, "0")}`,
    )
    .join("");

interface SignOptions {
  readonly key: string;
  readonly secret: string;
  readonly username: string;
  readonly password: string;
  /** The `to` in the base string (device libraries use ""). */
  readonly to?: string;
  readonly nonce?: string;
  readonly timestamp?: number | string;
  /** Put the Base64 signature in the form without the final Escape() of §2.5. */
  readonly rawSignature?: boolean;
  /** Tamper with the form after signing. */
  readonly tamper?: (fields: Map<string, string>) => void;
}

function signedForm(o: SignOptions): Element {
  const fields = new Map<string, string>([
    ["FORM_TYPE", OAUTH1],
    ["username", o.username],
    ["password", o.password],
    ["oauth_version", "1.0"],
    ["oauth_signature_method", "HMAC-SHA1"],
    ["oauth_nonce", o.nonce ?? randomBytes(16).toString("hex")],
    ["oauth_timestamp", String(o.timestamp ?? Math.floor(Date.now() / 1000))],
    ["oauth_consumer_key", o.key],
  ]);
  const pstr = [...fields]
    .map(([n, v]) => [esc(n), esc(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([n, v]) => `${n}=${v}`)
    .join("&");
  const bstr = `${esc("submit")}&${esc(o.to ?? "")}&${esc(pstr)}`;
  const signature = createHmac("sha1", `${esc(o.secret)}&`)
    .update(bstr)
    .digest("base64");
  fields.set("oauth_signature", o.rawSignature ? signature : esc(signature));
  o.tamper?.(fields);
  const x = xml("x", { xmlns: NS_DATA, type: "submit" });
  for (const [name, value] of fields) x.append(xml("field", { var: name }, xml("value", {}, value)));
  return xml("query", { xmlns: NS_REGISTER }, x);
}

/** A client stream after STARTTLS, not authenticated: where XEP-0077 registration happens. */
class PreAuthClient {
  private n = 0;
  features = "";
  private constructor(readonly raw: RawStream) {}

  static async open(broker: TestBroker): Promise<PreAuthClient> {
    const raw = await RawStream.connect({ port: broker.ports.c2s! });
    const before = await raw.open();
    assert.doesNotMatch(before, /iq-register/, "nothing but STARTTLS before TLS");
    await raw.startTls({ ca: broker.certificatePem });
    const client = new PreAuthClient(raw);
    client.features = await raw.open();
    return client;
  }

  /** Sends an iq and returns the parsed reply. */
  async iq(type: "get" | "set", payload: Element, to?: string): Promise<Element> {
    const id = `r${++this.n}`;
    await this.raw.send(xml("iq", { type, id, ...(to ? { to } : {}) }, payload).toString());
    const m = await this.raw.waitFor(
      new RegExp(`<iq\\b[^>]*\\bid=["']${id}["'][^>]*?(?:/>|>[\\s\\S]*?</iq>)`),
    );
    return parse(m[0]) as Element;
  }

  close(): void {
    this.raw.destroy();
  }
}

function errorOf(reply: Element): { condition: string | undefined; text: string } {
  assert.equal(reply.attrs.type, "error", `an error: ${reply.toString()}`);
  const error = reply.getChild("error")!;
  const condition = error.getChildElements().find((c) => c.name !== "text")?.name;
  return { condition, text: error.getChildText("text") ?? "" };
}

// ---------------------------------------------------------------------------------------------

describe("XEP-0077 registration with API keys (XEP-0348)", () => {
  let broker: TestBroker;
  let keys: ReturnType<typeof createApiKeyStore>;
  const open: PreAuthClient[] = [];

  before(async () => {
    broker = await startTestBroker({ config: { modules: { register: { signature_window: 120 } } } });
    keys = createApiKeyStore(broker.storage.db);
  });
  after(async () => {
    for (const c of open) c.close();
    await broker.stop();
  });

  const client = async () => {
    const c = await PreAuthClient.open(broker);
    open.push(c);
    return c;
  };
  const exists = (name: string) => broker.accounts.exists(name);

  test("the feature and the form are offered after TLS; unsigned registration is refused", async () => {
    const c = await client();
    assert.match(c.features, /<register\s+xmlns=["']http:\/\/jabber\.org\/features\/iq-register["']/);
    const form = (await c.iq("get", xml("query", { xmlns: NS_REGISTER }))).getChild("query", NS_REGISTER)!;
    assert.equal(form.getChild("username"), undefined, "closed: no plain fields");
    const x = form.getChild("x", NS_DATA)!;
    const vars = x.getChildren("field").map((f) => f.attrs.var);
    for (const v of [
      "FORM_TYPE",
      "username",
      "password",
      "oauth_nonce",
      "oauth_timestamp",
      "oauth_consumer_key",
      "oauth_signature",
    ]) {
      assert.ok(vars.includes(v), `field ${v}`);
    }
    assert.equal(
      x
        .getChildren("field")
        .find((f) => f.attrs.var === "FORM_TYPE")
        ?.getChildText("value"),
      OAUTH1,
    );

    const plain = await c.iq(
      "set",
      xml("query", { xmlns: NS_REGISTER }, xml("username", {}, "anon"), xml("password", {}, "pw")),
    );
    const e = errorOf(plain);
    assert.equal(e.condition, "not-allowed");
    assert.match(e.text, /signed with an API key/);
    assert.equal(await exists("anon"), false);
  });

  test("accounts up to the quota and not one more; both base strings and signature forms", async () => {
    const key = await keys.create({ owner: "factory@localhost", maxAccounts: 3 });
    const c = await client();
    const ok = async (opts: Partial<SignOptions> & { username: string }, to?: string) => {
      const reply = await c.iq(
        "set",
        signedForm({ key: key.id, secret: key.secret, password: `${opts.username}-pw`, ...opts }),
        to,
      );
      assert.equal(reply.attrs.type, "result", reply.toString());
    };
    await ok({ username: "dev1" }); // COMPAT: the empty-`to` base string of device libraries
    await ok({ username: "dev2", to: "localhost", rawSignature: true }, "localhost"); // §2.4 with `to`
    await ok({ username: "dev3", to: "localhost" }); // signed for the domain, sent without `to`
    const over = errorOf(
      await c.iq("set", signedForm({ key: key.id, secret: key.secret, username: "dev4", password: "pw" })),
    );
    assert.equal(over.condition, "not-allowed");
    assert.match(over.text, /quota of 3 accounts is used up/);
    assert.equal(await exists("dev4"), false);
    assert.deepEqual(await keys.accounts(key.id), ["dev1", "dev2", "dev3"], "recorded against the key");
    // The accounts work: a device logs in with what it registered.
    const dev = await loginTo(broker, "dev2", "dev2-pw");
    await dev.stop();
    // Audited, every use.
    assert.deepEqual(
      (await keys.auditTrail(key.id)).map((a) => `${a.outcome}:${a.username}`),
      ["created:dev1", "created:dev2", "created:dev3", "quota:dev4"],
    );
  });

  test("bad signature, replayed nonce, stale timestamp: refused, no account", async () => {
    const key = await keys.create({ owner: "factory@localhost", maxAccounts: 10 });
    const c = await client();
    const sign = (o: Partial<SignOptions> & { username: string }) =>
      signedForm({ key: key.id, secret: key.secret, password: "pw", ...o });

    let e = errorOf(await c.iq("set", sign({ username: "bad1", secret: "not-the-secret" })));
    assert.deepEqual([e.condition, e.text], ["bad-request", "invalid signature"]);
    e = errorOf(await c.iq("set", sign({ username: "bad2", tamper: (f) => f.set("username", "bad2x") })));
    assert.deepEqual(
      [e.condition, e.text],
      ["bad-request", "invalid signature"],
      "the form changed after signing",
    );
    e = errorOf(await c.iq("set", sign({ username: "bad3", to: "elsewhere.example" })));
    assert.equal(e.condition, "bad-request", "signed for another addressee");

    const nonce = "n-0123456789abcdef";
    assert.equal((await c.iq("set", sign({ username: "first", nonce }))).attrs.type, "result");
    e = errorOf(await c.iq("set", sign({ username: "second", nonce })));
    assert.equal(e.condition, "bad-request");
    assert.match(e.text, /oauth_nonce was used before \(replay\)/);
    // The same form again: the name is taken (and nothing new is made).
    e = errorOf(await c.iq("set", sign({ username: "first", nonce })));
    assert.equal(e.condition, "conflict");

    for (const [name, skew] of [
      ["stale", -600],
      ["future", 600],
    ] as const) {
      e = errorOf(
        await c.iq("set", sign({ username: name, timestamp: Math.floor(Date.now() / 1000) + skew })),
      );
      assert.equal(e.condition, "bad-request");
      assert.match(e.text, /oauth_timestamp is not within 120 s/);
    }
    e = errorOf(await c.iq("set", sign({ username: "nostamp", timestamp: "yesterday" })));
    assert.equal(e.condition, "bad-request");
    for (const name of ["bad1", "bad2", "bad2x", "bad3", "second", "stale", "future", "nostamp"]) {
      assert.equal(await exists(name), false, `no account ${name}`);
    }
    assert.deepEqual(await keys.accounts(key.id), ["first"]);
    const outcomes = (await keys.auditTrail(key.id)).map((a) => a.outcome);
    assert.deepEqual(outcomes, [
      "bad-signature",
      "bad-signature",
      "bad-signature",
      "created",
      "replayed",
      "conflict",
      "stale-timestamp",
      "stale-timestamp",
      "stale-timestamp",
    ]);
  });

  test("expired, revoked and unknown keys are refused; a taken name is a conflict", async () => {
    const c = await client();
    const expired = await keys.create({
      owner: "factory@localhost",
      maxAccounts: 5,
      expiresAt: new Date(Date.now() - 1000),
    });
    let e = errorOf(
      await c.iq(
        "set",
        signedForm({ key: expired.id, secret: expired.secret, username: "exp1", password: "pw" }),
      ),
    );
    assert.deepEqual([e.condition, e.text], ["not-authorized", "the API key has expired"]);

    const revoked = await keys.create({ owner: "factory@localhost", maxAccounts: 5 });
    assert.equal(
      (
        await c.iq(
          "set",
          signedForm({ key: revoked.id, secret: revoked.secret, username: "rev0", password: "pw" }),
        )
      ).attrs.type,
      "result",
    );
    assert.equal(await keys.revoke(revoked.id), true);
    e = errorOf(
      await c.iq(
        "set",
        signedForm({ key: revoked.id, secret: revoked.secret, username: "rev1", password: "pw" }),
      ),
    );
    assert.deepEqual([e.condition, e.text], ["not-authorized", "the API key is revoked"]);

    e = errorOf(
      await c.iq("set", signedForm({ key: "hk_nope", secret: "x", username: "unk1", password: "pw" })),
    );
    assert.deepEqual([e.condition, e.text], ["not-authorized", "unknown API key"]);

    const key = await keys.create({ owner: "factory@localhost", maxAccounts: 5 });
    await broker.addUser("taken", "pw");
    e = errorOf(
      await c.iq("set", signedForm({ key: key.id, secret: key.secret, username: "Taken", password: "pw" })),
    );
    assert.equal(e.condition, "conflict");
    e = errorOf(
      await c.iq("set", signedForm({ key: key.id, secret: key.secret, username: "a@b", password: "pw" })),
    );
    assert.equal(e.condition, "not-acceptable");
    for (const name of ["exp1", "rev1", "unk1"]) assert.equal(await exists(name), false);
    assert.deepEqual(await keys.accounts(key.id), [], "refusals take no quota");
    assert.deepEqual(
      (await keys.auditTrail("hk_nope")).map((a) => a.outcome),
      ["unknown-key"],
    );
  });

  test("after login: registration data, password change, removal", async () => {
    await broker.addUser("erin", "old-pw");
    const erin = await loginTo(broker, "erin", "old-pw");
    const data = await erin.iqCaller.get(xml("query", { xmlns: NS_REGISTER }));
    assert.ok(data!.getChild("registered"));
    assert.equal(data!.getChildText("username"), "erin");
    await erin.iqCaller.set(
      xml("query", { xmlns: NS_REGISTER }, xml("username", {}, "erin"), xml("password", {}, "new-pw")),
    );
    await assert.rejects(
      erin.iqCaller.set(
        xml("query", { xmlns: NS_REGISTER }, xml("username", {}, "taken"), xml("password", {}, "x")),
      ),
      (err: { condition?: string }) => err.condition === "not-allowed",
    );
    await erin.stop();
    const again = await loginTo(broker, "erin", "new-pw");
    await again.iqCaller.set(xml("query", { xmlns: NS_REGISTER }, xml("remove")));
    assert.equal(await exists("erin"), false);
    await again.stop().catch(() => {});
  });
});

describe("XEP-0077 open registration (operator opened it)", () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startTestBroker({
      config: { modules: { register: { open: true, open_per_hour_per_ip: 2 } } },
    });
  });
  after(() => broker.stop());

  test("plain fields or a plain form, limited per address", async () => {
    const c = await PreAuthClient.open(broker);
    const form = (await c.iq("get", xml("query", { xmlns: NS_REGISTER }))).getChild("query", NS_REGISTER)!;
    assert.ok(form.getChild("username") && form.getChild("password"));
    const plain = (u: string) =>
      xml("query", { xmlns: NS_REGISTER }, xml("username", {}, u), xml("password", {}, `${u}-pw`));
    assert.equal((await c.iq("set", plain("olga"))).attrs.type, "result");
    const e1 = errorOf(await c.iq("set", xml("query", { xmlns: NS_REGISTER }, xml("username", {}, "x"))));
    assert.equal(e1.condition, "not-acceptable");
    const x = xml(
      "x",
      { xmlns: NS_DATA, type: "submit" },
      xml("field", { var: "FORM_TYPE" }, xml("value", {}, NS_REGISTER)),
      xml("field", { var: "username" }, xml("value", {}, "paul")),
      xml("field", { var: "password" }, xml("value", {}, "paul-pw")),
    );
    assert.equal((await c.iq("set", xml("query", { xmlns: NS_REGISTER }, x))).attrs.type, "result");
    const e2 = errorOf(await c.iq("set", plain("quinn")));
    assert.equal(e2.condition, "resource-constraint");
    assert.equal(await broker.accounts.exists("quinn"), false);
    c.close();
    const olga = await loginTo(broker, "olga", "olga-pw");
    await olga.stop();
  });
});

describe("hanse apikey", () => {
  test("create, list, revoke (no broker running)", async () => {
    const dir = tempDataDir("hanse-apikey-");
    const dataDir = join(dir, "data");
    await embeddedDataDirFromTemplate(dataDir);
    const config = join(dir, "hanse.toml");
    writeFileSync(config, `domain = "localhost"\ndata_dir = "${dataDir}"\n`);
    const hanse = (args: string[]) => runHanse([...args, "--config", config]);

    const created = await hanse([
      "apikey",
      "create",
      "--owner",
      "Factory@localhost",
      "--max-accounts",
      "50",
      "--expires",
      "2099-01-01",
    ]);
    assert.equal(created.code, 0, created.stderr);
    const m =
      /created API key (hk_[0-9a-f]+) for factory@localhost \(at most 50 accounts, expires 2099-01-01T00:00:00\.000Z\)\nsecret: (\S+)/.exec(
        created.stdout,
      );
    assert.ok(m, created.stdout);
    let list = await hanse(["apikey", "list"]);
    assert.equal(
      list.stdout,
      `${m[1]}\tfactory@localhost\t0/50 accounts\texpires 2099-01-01T00:00:00.000Z\n`,
    );
    assert.doesNotMatch(list.stdout, new RegExp(m[2]!), "list never shows secrets");
    const revoked = await hanse(["apikey", "revoke", m[1]!]);
    assert.equal(revoked.code, 0, revoked.stderr);
    list = await hanse(["apikey", "list"]);
    assert.match(list.stdout, /\trevoked \d{4}-/);

    const errors = await Promise.all([
      hanse(["apikey", "create", "--max-accounts", "5"]),
      hanse(["apikey", "create", "--owner", "f@localhost", "--max-accounts", "many"]),
      hanse(["apikey", "frob"]),
    ]);
    for (const r of errors) assert.equal(r.code, 2, r.stderr);
    const bad = await hanse([
      "apikey",
      "create",
      "--owner",
      "f@localhost",
      "--max-accounts",
      "5",
      "--expires",
      "soon",
    ]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, "hanse: --expires soon is not a date\n");
    const unknown = await hanse(["apikey", "revoke", "hk_nope"]);
    assert.equal(unknown.stderr, "hanse: no API key hk_nope\n");
  });
});
