/**
 * Tests for the stream writer helpers.
 * References: RFC 6120 §4.2, §4.4, §4.8.3, §4.9.2; XML 1.0 §2.2, §2.11, §3.3.3.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Element } from "ltx";
import { StreamError } from "./errors.ts";
import { NS } from "./namespaces.ts";
import { escapeAttr, escapeText, STREAM_CLOSE, serializeStanza, streamHeader } from "./serialize.ts";
import { StreamParser } from "./stream-parser.ts";

/** Parse `xml` as the only stanza of a jabber:client stream. */
function reparse(xml: string): Element {
  const stanzas: Element[] = [];
  const errors: StreamError[] = [];
  const p = new StreamParser({
    onStreamStart() {},
    onStanza: (el) => stanzas.push(el),
    onStreamEnd() {},
    onError: (err) => errors.push(err),
  });
  p.write(Buffer.from(streamHeader({ contentNamespace: NS.client, to: "example.com", version: "1.0" })));
  p.write(Buffer.from(xml));
  assert.deepEqual(
    errors.map((e) => e.message),
    [],
  );
  assert.equal(stanzas.length, 1);
  return stanzas[0]!;
}

describe("streamHeader", () => {
  it("writes the header with both namespaces and the given attributes", () => {
    assert.equal(
      streamHeader({
        from: "example.com",
        to: "juliet@example.com",
        id: "abc",
        version: "1.0",
        lang: "en",
        contentNamespace: NS.client,
      }),
      "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
        "xmlns:stream='http://etherx.jabber.org/streams' from='example.com' to='juliet@example.com' " +
        "id='abc' version='1.0' xml:lang='en'>",
    );
    assert.equal(STREAM_CLOSE, "</stream:stream>");
  });

  it("omits absent attributes and declares extra prefixes", () => {
    assert.equal(
      streamHeader({ contentNamespace: NS.server, extraXmlns: { db: "jabber:server:dialback" } }),
      "<?xml version='1.0'?><stream:stream xmlns='jabber:server' " +
        "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>",
    );
  });

  it("escapes attribute values", () => {
    const header = streamHeader({ contentNamespace: NS.client, to: `a'b"c<d>&e`, id: "x\ny" });
    assert.match(header, / to='a&apos;b&quot;c&lt;d&gt;&amp;e' id='x&#10;y'>$/);
  });

  it("refuses unusable prefixes", () => {
    for (const prefix of ["stream", "xml", "xmlns", "a b", "1a", "a:b", ""]) {
      assert.throws(
        () => streamHeader({ contentNamespace: NS.client, extraXmlns: { [prefix]: "urn:x" } }),
        prefix,
      );
    }
  });

  it("is accepted by StreamParser", () => {
    const starts: Record<string, string>[] = [];
    const p = new StreamParser(
      { onStreamStart: (a) => starts.push(a), onStanza() {}, onStreamEnd() {}, onError: assert.fail },
      { contentNamespace: NS.server },
    );
    p.write(
      Buffer.from(
        streamHeader({
          contentNamespace: NS.server,
          from: "a&b",
          extraXmlns: { db: "jabber:server:dialback" },
          version: "1.0",
        }),
      ),
    );
    assert.deepEqual(starts, [{ from: "a&b", version: "1.0" }]);
  });
});

describe("serializeStanza", () => {
  it("escapes < > & ' \" in attributes and < > & in text", () => {
    const el = new Element("message", { id: `<>&'"` }).c("body").t(`<>&'"`).up();
    assert.equal(
      serializeStanza(el),
      '<message id="&lt;&gt;&amp;&apos;&quot;"><body>&lt;&gt;&amp;\'"</body></message>',
    );
  });

  it("keeps tab, LF and CR in attribute values and CR in text as references", () => {
    const el = new Element("x", { a: "1\t2\n3\r4" }).t("l1\r\nl2\n\tl3");
    assert.equal(serializeStanza(el), '<x a="1&#9;2&#10;3&#13;4">l1&#13;\nl2\n\tl3</x>');
    const back = reparse(serializeStanza(el));
    assert.equal(back.attrs.a, "1\t2\n3\r4");
    assert.equal(back.getText(), "l1\r\nl2\n\tl3");
  });

  it("never emits characters XML forbids", () => {
    const bad = "a\u0000b\u0001c\u0008d\u000Be\u001Ff\uFFFEg\uFFFFh\uD800i\uDC00j";
    const el = new Element("message", { id: bad }).c("body").t(bad).up();
    const wire = serializeStanza(el);
    const cleaned = "a\uFFFDb\uFFFDc\uFFFDd\uFFFDe\uFFFDf\uFFFDg\uFFFDh\uFFFDi\uFFFDj";
    assert.equal(wire, `<message id="${cleaned}"><body>${cleaned}</body></message>`);
    const back = reparse(wire);
    assert.equal(back.attrs.id, cleaned);
    assert.equal(back.getChildText("body"), cleaned);
  });

  it("keeps valid astral characters and a high surrogate at the end is replaced", () => {
    assert.equal(escapeText("😀é中"), "😀é中");
    assert.equal(escapeAttr("x\uD83D"), "x\uFFFD");
    assert.equal(escapeText("\uDE00\uD83D\uDE00"), "\uFFFD😀");
  });

  it("returns the same string when nothing needs escaping", () => {
    const s = "plain text with ümlauts and 😀";
    assert.equal(escapeText(s), s);
    assert.equal(escapeAttr(s), s);
  });

  it("writes numbers and skips null or undefined attributes", () => {
    const el = new Element("x", { a: 1, b: undefined, c: null });
    (el.children as unknown[]).push(42);
    assert.equal(serializeStanza(el), '<x a="1">42</x>');
  });

  it("writes a stanza without xmlns as is, so it takes the stream's namespace", () => {
    const el = new Element("message", { to: "a@b" }).c("body").t("hi").up();
    assert.equal(serializeStanza(el), '<message to="a@b"><body>hi</body></message>');
  });

  it("drops a top-level jabber:client or jabber:server xmlns but keeps nested ones (RFC 6120 §4.8.3)", () => {
    const fwd = new Element("message", { xmlns: NS.client, to: "a@b" })
      .c("forwarded", { xmlns: "urn:xmpp:forward:0" })
      .c("message", { xmlns: NS.client, from: "c@d" })
      .up()
      .up();
    assert.equal(
      serializeStanza(fwd),
      '<message to="a@b"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" from="c@d"/></forwarded></message>',
    );
    assert.equal(serializeStanza(new Element("presence", { xmlns: NS.server })), "<presence/>");
    assert.equal(
      serializeStanza(
        new Element("handshake", { xmlns: "jabber:component:accept" }),
        "jabber:component:accept",
      ),
      "<handshake/>",
    );
    assert.equal(
      serializeStanza(new Element("starttls", { xmlns: NS.tls })),
      '<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>',
    );
  });

  it("writes stream-namespace elements with the stream prefix", () => {
    assert.equal(
      serializeStanza(new StreamError("not-well-formed", "bad").toElement()),
      '<stream:error><not-well-formed xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>' +
        '<text xmlns="urn:ietf:params:xml:ns:xmpp-streams" xml:lang="en">bad</text></stream:error>',
    );
    const features = new Element("features", { xmlns: NS.stream });
    features.c("bind", { xmlns: NS.bind });
    features.c("in-stream-ns");
    assert.equal(
      serializeStanza(features),
      '<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/>' +
        '<in-stream-ns xmlns="http://etherx.jabber.org/streams"/></stream:features>',
    );
    // The canonical element is left untouched.
    assert.deepEqual(features.attrs, { xmlns: NS.stream });
    assert.equal(features.children.length, 2);
  });

  it("round-trips through StreamParser to the same canonical element", () => {
    const el = new Element("iq", { type: "set", id: "x&y" });
    el.c("query", { xmlns: "urn:q", "xml:lang": "de" })
      .c("item", { "a:attr": "v", "xmlns:a": "urn:a" })
      .t("text <&> 😀");
    const wire = serializeStanza(el);
    const back = reparse(wire);
    assert.equal(back.toString(), el.toString());
    assert.equal(serializeStanza(back), wire);
  });
});
