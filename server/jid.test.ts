import assert from "node:assert/strict";
import { test } from "node:test";
import { JidError, JidParseCache, parseJid, tryParseJid } from "./jid.ts";

test("RFC 7622 §3.1: parts split at the first '/' then the '@' before it", () => {
  const jid = parseJid("juliet@example.com/foo@bar/baz");
  assert.equal(jid.local, "juliet");
  assert.equal(jid.domain, "example.com");
  assert.equal(jid.resource, "foo@bar/baz");
  assert.equal(jid.bare, "juliet@example.com");
  assert.equal(jid.full, "juliet@example.com/foo@bar/baz");
  assert.equal(parseJid("example.com").bare, "example.com");
  assert.equal(parseJid("example.com/res").resource, "res");
});

test("localparts are case- and width-mapped, and NFC normalised", () => {
  assert.equal(parseJid("JuLiEt@Example.COM").bare, "juliet@example.com");
  assert.equal(parseJid("ＪＵＬＩＥＴ@example.com").local, "juliet"); // fullwidth
  assert.equal(parseJid("Ωmega@example.com").local, "ωmega");
  assert.equal(parseJid("e\u0301te@example.com").local, "\u00e9te"); // NFC
});

test("resourceparts keep case and map non-ASCII spaces (OpaqueString)", () => {
  assert.equal(parseJid("a@b/Kitchen\u00a0Sensor").resource, "Kitchen Sensor");
});

test("domainparts are lowercased, a trailing dot is dropped, IP literals pass", () => {
  assert.equal(parseJid("a@EXAMPLE.com.").domain, "example.com");
  assert.equal(parseJid("a@[::1]").domain, "[::1]");
  assert.equal(parseJid("a@127.0.0.1").domain, "127.0.0.1");
  assert.equal(parseJid("a@bücher.example").domain, "bücher.example");
});

test("malformed JIDs are refused with a reason", () => {
  for (const bad of [
    "",
    "@example.com",
    "a@",
    "a@b/",
    "a b@example.com",
    'a"b@example.com',
    "a:b@example.com",
    "a@exa mple.com",
    "a@-",
    "a\u0000@example.com",
    `${"x".repeat(1024)}@example.com`,
    "a@b/\u0007",
  ]) {
    assert.throws(() => parseJid(bad), JidError, `should refuse ${JSON.stringify(bad)}`);
    assert.equal(tryParseJid(bad), undefined);
  }
});

test("equality and bare/full conversions", () => {
  const a = parseJid("Alice@Example.com/Phone");
  assert.ok(a.equals(parseJid("alice@example.com/Phone")));
  assert.ok(!a.equals(parseJid("alice@example.com/phone")), "resources are case-sensitive");
  assert.equal(a.toBare().full, "alice@example.com");
  assert.equal(a.toBare().withResource("tablet").full, "alice@example.com/tablet");
});

test("parsing the same JID again gives the same result, and a malformed one fails every time", () => {
  for (let round = 0; round < 3; round++) {
    assert.equal(parseJid("JuLiEt@Example.COM/Balcony").full, "juliet@example.com/Balcony");
    assert.throws(() => parseJid("a b@example.com"), JidError);
    assert.throws(() => parseJid(""), JidError);
  }
});

test("the JID parse cache stays bounded under endless distinct JIDs and keeps the ones in use", () => {
  const cache = new JidParseCache({ maxEntries: 100, maxKeyLength: 64 });
  const hot = cache.parse("sensor@example.com/hot");
  for (let i = 0; i < 10_000; i++) {
    assert.equal(cache.parse(`attacker${i}@example.com/r${i}`).local, `attacker${i}`);
    assert.ok(cache.size <= 200, `size ${cache.size} after ${i + 1} distinct JIDs`);
    // A JID in steady use survives every turnover of the cache.
    if (i % 50 === 0) assert.equal(cache.parse("sensor@example.com/hot"), hot);
  }
  // Inputs too long to keep are still parsed correctly, but do not take a place.
  const before = cache.size;
  const long = `${"l".repeat(100)}@example.com`;
  assert.equal(cache.parse(long).local, "l".repeat(100));
  assert.equal(cache.size, before);
  // Malformed inputs are not kept either.
  assert.throws(() => cache.parse("a@b/"), JidError);
  assert.equal(cache.size, before);
});
