/**
 * iotdisco URIs and the XSF QR string: the examples of the spec digest, hand-written escapes,
 * errors, and property-based round trips of every form with awkward characters (a seeded PRNG, so
 * a failure names the seed that reproduces it).
 * References: XEP-0347 §3.9 (QR string), §3.15 (operators), ../shared/spec/iot-xeps.md §6.3.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  decodeIotDisco,
  encodeIotDisco,
  encodeLegacyQr,
  type IotDisco,
  IotDiscoError,
} from "../thing-registry/iotdisco.ts";
import type { SearchOp, Tag } from "../thing-registry/tags.ts";

// ---------------------------------------------------------------------------------------------
// A small seeded generator (mulberry32).

class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }
  bool(): boolean {
    return this.next() < 0.5;
  }
}

/** Characters that make URIs and QR strings hard: delimiters, escapes, operators, non-ASCII. */
const AWKWARD = [...";\\%=<>~&?/+*'\"!$()[]{}|^`,.-_@éÅß√中文😀🚀\u200b"];
const PLAIN = [..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"];
/** Values may also hold white space, ':' and '#', which names may not. */
const VALUE_ONLY = [..." :#\t\u00a0\u3000"];
const RESERVED = new Set(["R", "JID", "NID", "SID", "PT", "KEY"]);

function text(rng: Rng, alphabet: readonly string[], min: number, max: number): string {
  let s = "";
  const n = rng.int(min, max);
  for (let i = 0; i < n; i++) s += rng.pick(alphabet);
  return s;
}

function name(rng: Rng, used: Set<string>): string {
  for (;;) {
    const n = text(rng, rng.bool() ? PLAIN : [...PLAIN, ...AWKWARD], 1, rng.bool() ? 4 : 32);
    const key = n.toUpperCase();
    if (!RESERVED.has(key) && !used.has(key)) {
      used.add(key);
      return n;
    }
  }
}

const value = (rng: Rng) => text(rng, [...PLAIN, ...AWKWARD, ...VALUE_ONLY], 0, rng.bool() ? 8 : 128);

function number(rng: Rng): number {
  switch (rng.int(0, 4)) {
    case 0:
      return rng.int(-1000, 1000);
    case 1:
      return (rng.next() - 0.5) * 1e6;
    case 2:
      return (rng.next() - 0.5) * 10 ** rng.int(-300, 300);
    case 3:
      return Number.MAX_VALUE * (rng.bool() ? 1 : -1);
    default:
      return rng.pick([0, 1e21, 1e-7, 2.1, -33.008055, Number.MIN_VALUE]);
  }
}

function tag(rng: Rng, used: Set<string>): Tag {
  const n = name(rng, used);
  return rng.bool()
    ? { type: "str", name: n, value: value(rng) }
    : { type: "num", name: n, value: number(rng) };
}

function ordered<T>(a: T, b: T, cmp: (x: T, y: T) => number): [T, T] {
  return cmp(a, b) <= 0 ? [a, b] : [b, a];
}

const byCodePoint = (a: string, b: string): number => {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
};

function operator(rng: Rng, used: Set<string>): SearchOp {
  const n = name(rng, used);
  const kind = rng.int(0, 5);
  if (kind === 0) {
    return {
      op: rng.pick(["strEq", "strNEq", "strGt", "strGtEq", "strLt", "strLtEq"] as const),
      name: n,
      value: value(rng),
    };
  }
  if (kind === 1) {
    return {
      op: rng.pick(["numEq", "numNEq", "numGt", "numGtEq", "numLt", "numLtEq"] as const),
      name: n,
      value: number(rng),
    };
  }
  if (kind === 2) {
    return { op: "strMask", name: n, value: value(rng), wildcard: rng.pick([...AWKWARD, ...PLAIN, "*"]) };
  }
  const numeric = rng.bool();
  const [lo, hi] = numeric
    ? ordered(number(rng), number(rng), (a, b) => a - b)
    : ordered(value(rng), value(rng), byCodePoint);
  const same = numeric ? lo === hi : lo === hi;
  if (kind === 3 || kind === 4) {
    // A range must be able to hold: equal bounds only when both are included.
    const minIncluded = same || rng.bool();
    const maxIncluded = same || rng.bool();
    return numeric
      ? { op: "numRange", name: n, min: lo as number, minIncluded, max: hi as number, maxIncluded }
      : { op: "strRange", name: n, min: lo as string, minIncluded, max: hi as string, maxIncluded };
  }
  // A not-range must exclude something: equal bounds need at least one of them included.
  const minIncluded = rng.bool();
  const maxIncluded = same && !minIncluded ? true : rng.bool();
  return numeric
    ? { op: "numNRange", name: n, min: lo as number, minIncluded, max: hi as number, maxIncluded }
    : { op: "strNRange", name: n, min: lo as string, minIncluded, max: hi as string, maxIncluded };
}

const registry = (rng: Rng) =>
  rng.bool() ? { registry: text(rng, [...PLAIN, ...AWKWARD, ...VALUE_ONLY], 1, 40) } : {};

function roundTrip(uri: IotDisco, seed: number, i: number): void {
  const encoded = encodeIotDisco(uri);
  assert.match(encoded, /^iotdisco:[\x21-\x7e]*$/, `printable ASCII only (seed ${seed}, case ${i})`);
  assert.ok(!/\\/.test(encoded), "our encoder never needs a '\\' escape");
  assert.deepEqual(decodeIotDisco(encoded), uri, `seed ${seed}, case ${i}: ${encoded}`);
}

const SEED = Number(process.env.IOTDISCO_SEED ?? 20260630);
const CASES = 300;

describe("iotdisco: property-based round trips", () => {
  test("claim URIs", () => {
    const rng = new Rng(SEED);
    for (let i = 0; i < CASES; i++) {
      const used = new Set<string>();
      const tags: Tag[] = Array.from({ length: rng.int(0, 8) }, () => tag(rng, used));
      tags.splice(rng.int(0, tags.length), 0, {
        type: "str",
        name: rng.pick(["KEY", "key", "Key"]),
        value: value(rng),
      });
      roundTrip({ kind: "claim", tags, ...registry(rng) }, SEED, i);
    }
  });

  test("search URIs", () => {
    const rng = new Rng(SEED + 1);
    for (let i = 0; i < CASES; i++) {
      const used = new Set<string>();
      const operators = Array.from({ length: rng.int(1, 6) }, () => operator(rng, used));
      roundTrip({ kind: "search", operators, ...registry(rng) }, SEED + 1, i);
    }
  });

  test("direct-reference URIs", () => {
    const rng = new Rng(SEED + 2);
    const any = () => text(rng, [...PLAIN, ...AWKWARD, ...VALUE_ONLY], 0, 60);
    for (let i = 0; i < CASES; i++) {
      const used = new Set<string>();
      roundTrip(
        {
          kind: "direct",
          jid: text(rng, [...PLAIN, ...AWKWARD], 1, 60),
          ...(rng.bool() ? { nodeId: any() } : {}),
          ...(rng.bool() ? { sourceId: any() } : {}),
          ...(rng.bool() ? { cacheType: any() } : {}),
          tags: Array.from({ length: rng.int(0, 3) }, () => tag(rng, used)),
          ...registry(rng),
        },
        SEED + 2,
        i,
      );
    }
  });

  test("XSF QR strings (IoTDisco;NAME:VALUE)", () => {
    const rng = new Rng(SEED + 3);
    for (let i = 0; i < CASES; i++) {
      const used = new Set<string>();
      const tags = Array.from({ length: rng.int(1, 8) }, () => tag(rng, used));
      const encoded = encodeLegacyQr(tags);
      assert.deepEqual(
        decodeIotDisco(encoded),
        { kind: "claim", tags },
        `seed ${SEED + 3}, case ${i}: ${encoded}`,
      );
    }
  });
});

describe("iotdisco: examples, escapes and errors", () => {
  test("the claim and search examples of the digest", () => {
    assert.deepEqual(
      decodeIotDisco(
        "iotdisco:MAN=acme.test;MODEL=TH-2;SN=000917;#V=2.1;KEY=f3c9e0a7b11d;R=registry.acme.test",
      ),
      {
        kind: "claim",
        tags: [
          { type: "str", name: "MAN", value: "acme.test" },
          { type: "str", name: "MODEL", value: "TH-2" },
          { type: "str", name: "SN", value: "000917" },
          { type: "num", name: "V", value: 2.1 },
          { type: "str", name: "KEY", value: "f3c9e0a7b11d" },
        ],
        registry: "registry.acme.test",
      },
    );
    assert.deepEqual(decodeIotDisco("iotdisco:MAN=acme.test;SN~*0009*;#V>=2;#V<3;R=registry.acme.test"), {
      kind: "search",
      operators: [
        { op: "strEq", name: "MAN", value: "acme.test" },
        { op: "strMask", name: "SN", value: "0009*", wildcard: "*" },
        { op: "numRange", name: "V", min: 2, minIncluded: true, max: 3, maxIncluded: false },
      ],
      registry: "registry.acme.test",
    });
    assert.deepEqual(decodeIotDisco("iotdisco:JID=th2-000917@acme.test;NID=M7"), {
      kind: "direct",
      jid: "th2-000917@acme.test",
      nodeId: "M7",
      tags: [],
    });
    // Our encoder writes the same claim back (R last, '.' and '-' unencoded).
    assert.equal(
      encodeIotDisco({
        kind: "claim",
        tags: [
          { type: "str", name: "MAN", value: "acme.test" },
          { type: "num", name: "V", value: 2.1 },
          { type: "str", name: "KEY", value: "a;b c" },
        ],
        registry: "registry.acme.test",
      }),
      "iotdisco:MAN=acme.test;#V=2.1;KEY=a%3Bb%20c;R=registry.acme.test",
    );
  });

  test("opposite bounds: a range when both can hold, otherwise a not-range", () => {
    const ops = (uri: string) => (decodeIotDisco(uri) as Extract<IotDisco, { kind: "search" }>).operators;
    assert.deepEqual(ops("iotdisco:#T<2;#T>5"), [
      { op: "numNRange", name: "T", min: 2, minIncluded: true, max: 5, maxIncluded: true },
    ]);
    assert.deepEqual(ops("iotdisco:#T>=5;#T<=5"), [
      { op: "numRange", name: "T", min: 5, minIncluded: true, max: 5, maxIncluded: true },
    ]);
    assert.deepEqual(ops("iotdisco:#T>5;#T<=5"), [
      { op: "numNRange", name: "T", min: 5, minIncluded: false, max: 5, maxIncluded: true },
    ]);
    assert.deepEqual(ops("iotdisco:CITY>=A;CITY<B;ROOM<>x"), [
      { op: "strRange", name: "CITY", min: "A", minIncluded: true, max: "B", maxIncluded: false },
      { op: "strNEq", name: "ROOM", value: "x" },
    ]);
  });

  test("hand-written '\\' escapes and both prefixes, case-insensitively", () => {
    assert.deepEqual(decodeIotDisco("IOTDISCO:KEY=a\\;b;SN=x\\\\y%20z"), {
      kind: "claim",
      tags: [
        { type: "str", name: "KEY", value: "a;b" },
        { type: "str", name: "SN", value: "x\\y z" },
      ],
    });
    // XEP-0347 §3.9, the example string.
    assert.deepEqual(
      decodeIotDisco("IoTDisco;SN:394872348732948723;MAN:www.ktc.se;MODEL:IMC;#V:1.2;KEY:4857402340298342"),
      {
        kind: "claim",
        tags: [
          { type: "str", name: "SN", value: "394872348732948723" },
          { type: "str", name: "MAN", value: "www.ktc.se" },
          { type: "str", name: "MODEL", value: "IMC" },
          { type: "num", name: "V", value: 1.2 },
          { type: "str", name: "KEY", value: "4857402340298342" },
        ],
      },
    );
    assert.equal(
      encodeLegacyQr([
        { type: "str", name: "SN", value: "a;b\\c:d" },
        { type: "num", name: "V", value: 1.5 },
      ]),
      "IoTDisco;SN:a\\;b\\\\c:d;#V:1.5",
    );
  });

  test("errors name what is wrong", () => {
    const bad = (text: string, pattern: RegExp) =>
      assert.throws(
        () => decodeIotDisco(text),
        (err: unknown) => err instanceof IotDiscoError && pattern.test(err.message),
      );
    bad("http://example.org", /not an iotdisco URI/);
    bad("iotdisco:", /no tags/);
    bad("iotdisco:SN=%E0%A4%A", /malformed percent-encoding/);
    bad("iotdisco:SN=1;sn=2;KEY=x", /SN appears more than once/);
    bad("iotdisco:KEY=x;#V>2", /only '=' is allowed/);
    bad("iotdisco:#V=abc;KEY=x", /V: "abc" is not a number/);
    bad("iotdisco:#V=0x10;KEY=x", /not a number/);
    bad("iotdisco:#V~*1", /mask applies to string tags only/);
    bad("iotdisco:SN=1;NID=x", /NID is only allowed with JID/);
    bad("iotdisco:JID=a@b;KEY=x", /no KEY/);
    bad("iotdisco:SN>1;SN>2", /without forming a range/);
    bad("iotdisco:SN%3AX=1", /contains ':', '#' or white space/);
    bad("iotdisco:=1", /not NAME=VALUE/);
    bad(`iotdisco:${"N".repeat(33)}=1`, /longer than 32 characters/);
    bad(`iotdisco:SN=${"v".repeat(129)}`, /longer than 128 characters/);
    bad("IoTDisco;SN", /not NAME:VALUE/);
    assert.throws(
      () => encodeIotDisco({ kind: "claim", tags: [{ type: "str", name: "SN", value: "1" }] }),
      /needs a KEY/,
    );
    assert.throws(
      () =>
        encodeIotDisco({
          kind: "search",
          operators: [{ op: "numRange", name: "V", min: 3, minIncluded: true, max: 2, maxIncluded: true }],
        }),
      /empty range/,
    );
  });
});
