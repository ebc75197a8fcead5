/**
 * The XSF provisioning codec: the digest's example decodes as written, every element round-trips,
 * and malformed input is a bad-request that names the problem.
 * References: XEP-0324 §3.1, §3.3–§3.5, §7 (schema); spec digest §3.1 (narrowing example).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Element, parse } from "ltx";
import {
  decodeCanControl,
  decodeCanControlResponse,
  decodeCanRead,
  decodeCanReadResponse,
  decodeFriendship,
  decodeIsFriend,
  decodeIsFriendResponse,
  encodeCanControl,
  encodeCanControlResponse,
  encodeCanRead,
  encodeCanReadResponse,
  encodeClearCache,
  encodeClearCacheResponse,
  encodeFriend,
  encodeIsFriend,
  encodeIsFriendResponse,
  encodeUnfriend,
  NS_PROVISIONING,
} from "./protocol.ts";

const reparse = (el: Element) => parse(el.toString()) as Element;

function badRequest(fn: () => unknown, text: RegExp): void {
  assert.throws(fn, (err: { condition?: string; text?: string }) => {
    assert.equal(err.condition, "bad-request");
    assert.match(err.text ?? "", text);
    return true;
  });
}

describe("provisioning protocol (XEP-0324)", () => {
  test("the digest's canRead example decodes with its nodes, flags and token", () => {
    const el =
      parse(`<canRead xmlns='urn:xmpp:iot:provisioning' jid='ops@other.test' momentary='true' userToken='U9'>
      <node nodeId='M7'/><node nodeId='M8'/></canRead>`) as Element;
    const q = decodeCanRead(el);
    assert.equal(q.jid, "ops@other.test");
    assert.deepEqual(q.categories, ["momentary"]);
    assert.deepEqual(q.nodes, [{ nodeId: "M7" }, { nodeId: "M8" }]);
    assert.deepEqual(q.fieldNames, []);
    assert.deepEqual(q.tokens, { userToken: "U9" });
    const answer = decodeCanReadResponse(
      parse(`<canReadResponse xmlns='urn:xmpp:iot:provisioning' jid='ops@other.test' momentary='true' result='true'>
        <node nodeId='M7'/></canReadResponse>`) as Element,
    );
    assert.deepEqual(answer, {
      jid: "ops@other.test",
      result: true,
      categories: ["momentary"],
      nodes: [{ nodeId: "M7" }],
      fieldNames: [],
    });
  });

  test("canRead and canReadResponse round-trip nodes, fields, categories and tokens", () => {
    const q = {
      jid: "c@x.test",
      categories: ["momentary", "identity"] as const,
      nodes: [{ nodeId: "N1", sourceId: "S", cacheType: "C" }, { nodeId: "N2" }],
      fieldNames: ["Temperature", "Humidity"],
      tokens: { serviceToken: "a b", deviceToken: "d" },
    };
    const el = reparse(encodeCanRead({ ...q, categories: [...q.categories] }));
    assert.equal(el.attrs.xmlns, NS_PROVISIONING);
    assert.deepEqual(decodeCanRead(el), { ...q, categories: [...q.categories] });
    const a = { jid: "c@x.test", result: false, categories: [], nodes: [], fieldNames: [] };
    assert.deepEqual(decodeCanReadResponse(reparse(encodeCanReadResponse(a))), a);
  });

  test("canControl carries <parameter name/> children and round-trips", () => {
    const q = {
      jid: "c@x.test",
      nodes: [{ nodeId: "R1" }],
      parameterNames: ["Output", "Setpoint"],
      tokens: {},
    };
    const el = reparse(encodeCanControl(q));
    assert.deepEqual(
      el.getChildren("parameter").map((p) => p.attrs.name),
      ["Output", "Setpoint"],
    );
    assert.deepEqual(decodeCanControl(el), q);
    const a = { jid: "c@x.test", result: true, nodes: [{ nodeId: "R1" }], parameterNames: ["Output"] };
    assert.deepEqual(decodeCanControlResponse(reparse(encodeCanControlResponse(a))), a);
  });

  test("isFriend, its response (secondaryTrustAllowed defaults to false), friend and unfriend", () => {
    assert.deepEqual(decodeIsFriend(reparse(encodeIsFriend("b@y.test"))), { jid: "b@y.test" });
    assert.deepEqual(decodeIsFriendResponse(reparse(encodeIsFriendResponse("b@y.test", true))), {
      jid: "b@y.test",
      result: true,
      secondaryTrustAllowed: false,
    });
    assert.equal(encodeIsFriendResponse("b@y.test", false).attrs.secondaryTrustAllowed, undefined);
    assert.equal(
      decodeIsFriendResponse(encodeIsFriendResponse("b@y.test", false, true)).secondaryTrustAllowed,
      true,
    );
    assert.deepEqual(decodeFriendship(reparse(encodeFriend("b@y.test"))), {
      kind: "friend",
      jid: "b@y.test",
    });
    assert.deepEqual(decodeFriendship(reparse(encodeUnfriend("b@y.test"))), {
      kind: "unfriend",
      jid: "b@y.test",
    });
    assert.equal(encodeClearCache().toString(), `<clearCache xmlns="${NS_PROVISIONING}"/>`);
    assert.equal(encodeClearCacheResponse().name, "clearCacheResponse");
  });

  test("malformed input is a bad-request naming what is wrong", () => {
    const p = (xml: string) => parse(xml) as Element;
    badRequest(() => decodeIsFriend(p(`<isFriend xmlns='${NS_PROVISIONING}'/>`)), /jid/);
    badRequest(() => decodeIsFriend(p(`<isFriend xmlns='urn:other' jid='a@b'/>`)), /not in/);
    badRequest(
      () => decodeIsFriendResponse(p(`<isFriendResponse xmlns='${NS_PROVISIONING}' jid='a@b'/>`)),
      /result/,
    );
    badRequest(
      () =>
        decodeIsFriendResponse(p(`<isFriendResponse xmlns='${NS_PROVISIONING}' jid='a@b' result='yes'/>`)),
      /not a boolean/,
    );
    badRequest(
      () => decodeCanRead(p(`<canRead xmlns='${NS_PROVISIONING}' jid='a@b'><field/></canRead>`)),
      /name/,
    );
    badRequest(
      () => decodeCanRead(p(`<canRead xmlns='${NS_PROVISIONING}' jid='a@b'><node/></canRead>`)),
      /nodeId/,
    );
    badRequest(
      () => decodeCanRead(p(`<canRead xmlns='${NS_PROVISIONING}' jid='a@b' momentary='maybe'/>`)),
      /momentary/,
    );
    badRequest(
      () => decodeCanControl(p(`<canRead xmlns='${NS_PROVISIONING}' jid='a@b'/>`)),
      /expected <canControl/,
    );
    badRequest(() => decodeFriendship(p(`<Friend xmlns='${NS_PROVISIONING}' jid='a@b'/>`)), /friend/);
    const many = new Element("canControl", { xmlns: NS_PROVISIONING, jid: "a@b" });
    for (let i = 0; i < 300; i++) many.c("parameter", { name: `p${i}` });
    badRequest(() => decodeCanControl(many), /more than 256/);
  });
});
