/**
 * Tests for StreamParser, the security boundary for stream input.
 * References: RFC 6120 §4.2-§4.4, §4.6.1, §4.8, §4.9.3, §5.4.3.3, §6.4.6, §11.1, §11.6.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Element } from "ltx";
import type { StreamError } from "./errors.ts";
import { NS } from "./namespaces.ts";
import { serializeStanza } from "./serialize.ts";
import { StreamParser, type StreamParserOptions } from "./stream-parser.ts";

const HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
  "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>";

interface Harness {
  parser: StreamParser;
  starts: { attrs: Record<string, string>; ns: Record<string, string> }[];
  stanzas: Element[];
  errors: StreamError[];
  ends: number;
  write(s: string | Buffer): void;
}

function harness(opts: StreamParserOptions = {}, onStanza?: (el: Element, h: Harness) => void): Harness {
  const h: Harness = {
    starts: [],
    stanzas: [],
    errors: [],
    ends: 0,
    write(s: string | Buffer) {
      h.parser.write(typeof s === "string" ? Buffer.from(s) : s);
    },
  } as unknown as Harness;
  h.parser = new StreamParser(
    {
      onStreamStart(attrs, ns) {
        h.starts.push({ attrs, ns });
      },
      onStanza(el) {
        h.stanzas.push(el);
        onStanza?.(el, h);
      },
      onStreamEnd() {
        h.ends++;
      },
      onError(err) {
        h.errors.push(err);
      },
    },
    opts,
  );
  return h;
}

function opened(opts: StreamParserOptions = {}): Harness {
  const h = harness(opts);
  h.write(HEADER);
  assert.equal(h.starts.length, 1);
  assert.deepEqual(h.errors, []);
  return h;
}

/** Parse one stanza after a header and return it (asserting no error). */
function parseOne(xml: string, opts: StreamParserOptions = {}): Element {
  const h = opened(opts);
  h.write(xml);
  assert.deepEqual(
    h.errors.map((e) => e.message),
    [],
  );
  assert.equal(h.stanzas.length, 1);
  return h.stanzas[0]!;
}

function errorOf(h: Harness): string {
  assert.equal(h.errors.length, 1, `expected one error, got ${h.errors.map((e) => e.message).join(", ")}`);
  return h.errors[0]!.condition;
}

function afterHeader(xml: string, opts: StreamParserOptions = {}): Harness {
  const h = opened(opts);
  h.write(xml);
  return h;
}

describe("StreamParser: stream header", () => {
  it("reports attributes and declared namespaces", () => {
    const h = opened();
    assert.deepEqual(h.starts[0]!.attrs, { to: "example.com", version: "1.0", "xml:lang": "en" });
    assert.deepEqual(h.starts[0]!.ns, { "": NS.client, stream: NS.stream });
  });

  it("accepts a header without XML declaration, with a BOM, or split in single bytes", () => {
    const plain = harness();
    plain.write(HEADER.replace("<?xml version='1.0'?>", ""));
    assert.equal(plain.starts.length, 1);
    const bom = harness();
    bom.write(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(HEADER)]));
    assert.equal(bom.starts.length, 1);
    assert.deepEqual(bom.errors, []);
    const bytes = harness();
    for (const b of Buffer.from(HEADER)) bytes.write(Buffer.from([b]));
    assert.equal(bytes.starts.length, 1);
  });

  it("accepts an explicit UTF-8 encoding and refuses any other (RFC 6120 §11.6)", () => {
    const ok = harness();
    ok.write(HEADER.replace("version='1.0'?>", "version='1.0' encoding='utf-8'?>"));
    assert.equal(ok.starts.length, 1);
    const bad = harness();
    bad.write(HEADER.replace("version='1.0'?>", "version='1.0' encoding='ISO-8859-1'?>"));
    assert.equal(errorOf(bad), "unsupported-encoding");
    assert.equal(bad.starts.length, 0);
  });

  it("accepts jabber:server when that is the content namespace", () => {
    const h = harness({ contentNamespace: NS.server });
    h.write(
      "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' " +
        "xmlns:db='jabber:server:dialback' version='1.0'>",
    );
    assert.deepEqual(h.errors, []);
    assert.equal(h.starts[0]!.ns.db, "jabber:server:dialback");
    h.write("<db:result from='a.example' to='b.example'>key</db:result>");
    assert.equal(
      h.stanzas[0]!.toString(),
      '<result xmlns="jabber:server:dialback" from="a.example" to="b.example">key</result>',
    );
  });

  it("refuses a wrong stream namespace or root name (RFC 6120 §4.8.1)", () => {
    for (const header of [
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://example.com/streams'>",
      "<stream:foo xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
      "<stream xmlns='jabber:client'>",
      "<message xmlns='jabber:client'>",
    ]) {
      const h = harness();
      h.write(header);
      assert.equal(errorOf(h), "invalid-namespace", header);
      assert.equal(h.starts.length, 0);
    }
  });

  it("refuses a missing or wrong content namespace (RFC 6120 §4.8.2)", () => {
    for (const header of [
      "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
      "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>",
      "<stream:stream xmlns='urn:other' xmlns:stream='http://etherx.jabber.org/streams'>",
    ]) {
      const h = harness();
      h.write(header);
      assert.equal(errorOf(h), "invalid-namespace", header);
    }
  });

  it("refuses an unprefixed or undeclared stream prefix (RFC 6120 §4.9.3.2)", () => {
    for (const header of [
      "<stream xmlns='http://etherx.jabber.org/streams'>",
      "<stream:stream xmlns='jabber:client'>",
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' x:y='1'>",
    ]) {
      const h = harness();
      h.write(header);
      assert.equal(errorOf(h), "bad-namespace-prefix", header);
    }
  });

  it("accepts another prefix bound to the stream namespace", () => {
    const h = harness();
    h.write("<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'><s:features/>");
    assert.deepEqual(h.errors, []);
    assert.equal(h.stanzas[0]!.toString(), `<features xmlns="${NS.stream}"/>`);
  });

  it("limits the header size", () => {
    const h = harness({ maxHeaderBytes: 1024 });
    h.write("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'");
    for (let i = 0; i < 100 && h.errors.length === 0; i++) h.write(` a${i}='${"x".repeat(20)}'`);
    assert.equal(errorOf(h), "policy-violation");
    assert.equal(h.starts.length, 0);
  });

  it("refuses junk before the header", () => {
    const h = harness();
    h.write(`hello ${HEADER}`);
    assert.equal(errorOf(h), "not-well-formed");
  });

  it("refuses a second header without reset()", () => {
    const h = afterHeader(HEADER.replace("<?xml version='1.0'?>", ""));
    assert.equal(errorOf(h), "bad-format");
  });
});

describe("StreamParser: canonical form", () => {
  it("gives prefixed and unprefixed stanzas the same form", () => {
    const a = parseOne(
      "<foo:message xmlns:foo='jabber:client' to='a@b'><foo:body>hi</foo:body></foo:message>",
    );
    const b = parseOne("<message to='a@b'><body>hi</body></message>");
    const c = parseOne("<message xmlns='jabber:client' to='a@b'><body>hi</body></message>");
    assert.equal(a.toString(), '<message to="a@b"><body>hi</body></message>');
    assert.equal(b.toString(), a.toString());
    assert.equal(c.toString(), a.toString());
    assert.equal(a.name, "message");
    assert.equal(a.attrs.xmlns, undefined);
  });

  it("puts xmlns exactly where the namespace changes", () => {
    const el = parseOne(
      "<iq type='get' id='1'><q:query xmlns:q='jabber:iq:roster'><q:item jid='x@y'/>" +
        "<other xmlns='urn:o'><q:deep/></other></q:query></iq>",
    );
    assert.equal(
      el.toString(),
      '<iq type="get" id="1"><query xmlns="jabber:iq:roster"><item jid="x@y"/>' +
        '<other xmlns="urn:o"><deep xmlns="jabber:iq:roster"/></other></query></iq>',
    );
    assert.equal(el.getChild("query", "jabber:iq:roster")?.getChild("item")?.attrs.jid, "x@y");
  });

  it("keeps xmlns on top-level elements outside the content namespace", () => {
    const h = afterHeader(
      "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
    );
    assert.deepEqual(h.errors, []);
    assert.equal(h.stanzas[0]!.toString(), '<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>');
    assert.equal(
      h.stanzas[1]!.toString(),
      `<features xmlns="${NS.stream}"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></features>`,
    );
  });

  it("keeps xml:lang and prefixed attributes with their declaration, drops unused declarations", () => {
    const el = parseOne(
      "<message xml:lang='de' xmlns:unused='urn:u' xmlns:a='urn:a' a:x='1'>" +
        "<body xml:lang='fr' xmlns:b='urn:b' b:y='2'>salut</body></message>",
    );
    assert.deepEqual(el.attrs, { "xml:lang": "de", "a:x": "1", "xmlns:a": "urn:a" });
    const body = el.getChild("body")!;
    assert.deepEqual(body.attrs, { "xml:lang": "fr", "b:y": "2", "xmlns:b": "urn:b" });
    assert.equal(el.getChildText("body"), "salut");
  });

  it("declares a prefix inherited from the header on the element that uses it", () => {
    const h = harness();
    h.write(
      "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:p='urn:p'>",
    );
    h.write("<message p:x='1'><p:ext/></message>");
    assert.equal(h.stanzas[0]!.toString(), '<message p:x="1" xmlns:p="urn:p"><ext xmlns="urn:p"/></message>');
  });

  it("merges text, entities and CDATA into one string child", () => {
    const el = parseOne("<message><body>a &amp; b<![CDATA[ <c> ]]>&#x41;&#66;</body></message>");
    assert.deepEqual(el.getChild("body")!.children, ["a & b <c> AB"]);
  });

  it("accepts CR LF right after an element name, wherever the chunks are cut", () => {
    const bytes = Buffer.from(
      `${HEADER}\r\n<presence\r\n/>\r\n<message\r\nto='a@b'\r\n>x\r\ny</message\r\n>`,
    );
    for (let cut = HEADER.length; cut < bytes.length; cut++) {
      const h = harness();
      h.parser.write(bytes.subarray(0, cut));
      h.parser.write(bytes.subarray(cut));
      assert.deepEqual(h.errors, [], `cut at ${cut}`);
      assert.deepEqual(
        h.stanzas.map((s) => s.toString()),
        ["<presence/>", '<message to="a@b">x\ny</message>'],
      );
    }
  });

  it("gives the same result for any chunking", () => {
    const body =
      " <message xmlns:x='urn:x' x:a='1' to='a@b'><body xml:lang='de'>grüße &amp; 😀</body><x:e/></message>\n" +
      "<iq type='get' id='q'><query xmlns='jabber:iq:roster'/></iq><presence><![CDATA[a]]>b</presence> " +
      "<r xmlns='urn:xmpp:sm:3'/></stream:stream>";
    const bytes = Buffer.from(HEADER + body);
    const reference = harness();
    reference.parser.write(bytes);
    const expected = reference.stanzas.map((s) => s.toString());
    assert.equal(expected.length, 4);
    assert.equal(reference.ends, 1);
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 200; round++) {
      const h = harness();
      for (let i = 0; i < bytes.length; ) {
        const n = 1 + Math.floor(random() * 24);
        h.parser.write(bytes.subarray(i, i + n));
        i += n;
      }
      assert.deepEqual(h.errors, []);
      assert.deepEqual(
        h.stanzas.map((s) => s.toString()),
        expected,
      );
      assert.equal(h.ends, 1);
    }
  });

  it("sets parent pointers", () => {
    const el = parseOne("<message><body>x</body></message>");
    assert.equal(el.parent, null);
    assert.equal(el.getChild("body")!.parent, el);
  });

  it("delivers several stanzas from one chunk and one stanza from many chunks", () => {
    const h = opened();
    h.write("<presence/> <message><body>1</body></message>\n<iq type='get' id='a'/>");
    assert.deepEqual(
      h.stanzas.map((s) => s.name),
      ["presence", "message", "iq"],
    );
    const xml = "<message id='x'><body>split across chunks</body></message>";
    for (const ch of xml) h.write(ch);
    assert.equal(h.stanzas[3]!.toString(), '<message id="x"><body>split across chunks</body></message>');
  });

  it("keeps attribute values and text exact through parse, serialize, parse", () => {
    const xml =
      "<message id='a&amp;b&lt;c&gt;d&quot;e&apos;f' x='tab&#9;lf&#10;cr&#13;' y='&#x1F600;&#xE9;' " +
      "z='line\nbreak\ttab'><body>&lt;b&gt; &amp; &#13;&#x0D;\r\n&quot;'\"&#x1F600;</body></message>";
    const first = parseOne(xml);
    assert.equal(first.attrs.id, "a&b<c>d\"e'f");
    assert.equal(first.attrs.x, "tab\tlf\ncr\r");
    assert.equal(first.attrs.y, "😀é");
    assert.equal(first.attrs.z, "line break tab"); // XML 1.0 §3.3.3 normalisation of literal whitespace
    assert.equal(first.getChildText("body"), '<b> & \r\r\n"\'"😀');
    const wire = serializeStanza(first);
    assert.equal(
      wire,
      '<message id="a&amp;b&lt;c&gt;d&quot;e&apos;f" x="tab&#9;lf&#10;cr&#13;" y="😀é" z="line break tab">' +
        '<body>&lt;b&gt; &amp; &#13;&#13;\n"\'"😀</body></message>',
    );
    const second = parseOne(wire);
    assert.deepEqual(second.attrs, first.attrs);
    assert.deepEqual(second.children, first.children);
    assert.equal(serializeStanza(second), wire);
  });
});

describe("StreamParser: UTF-8", () => {
  const text = "é€😀ü中";
  const stream = `${HEADER}<message><body a='${text}'>${text}</body></message>`;
  const bytes = Buffer.from(stream);

  it("survives a character split across two writes at every byte offset", () => {
    for (let cut = 1; cut < bytes.length; cut++) {
      const h = harness();
      h.parser.write(bytes.subarray(0, cut));
      h.parser.write(bytes.subarray(cut));
      assert.deepEqual(h.errors, [], `cut at ${cut}`);
      assert.equal(h.stanzas.length, 1, `cut at ${cut}`);
      const body = h.stanzas[0]!.getChild("body")!;
      assert.equal(body.getText(), text, `cut at ${cut}`);
      assert.equal(body.attrs.a, text, `cut at ${cut}`);
    }
  });

  it("survives one byte per write", () => {
    const h = harness();
    for (const b of bytes) h.parser.write(Buffer.from([b]));
    assert.equal(h.stanzas[0]!.getChildText("body"), text);
  });

  const invalid: [string, number[]][] = [
    ["overlong NUL", [0xc0, 0x80]],
    ["overlong slash", [0xc0, 0xaf]],
    ["overlong 3-byte", [0xe0, 0x80, 0xaf]],
    ["overlong 4-byte", [0xf0, 0x80, 0x80, 0xaf]],
    ["lone continuation byte", [0x80]],
    ["UTF-16 surrogate D800", [0xed, 0xa0, 0x80]],
    ["UTF-16 surrogate DFFF", [0xed, 0xbf, 0xbf]],
    ["above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["0xFE", [0xfe]],
    ["0xFF", [0xff]],
    ["truncated then ASCII", [0xe2, 0x82, 0x41]],
  ];
  for (const [name, seq] of invalid) {
    it(`refuses invalid UTF-8: ${name} (RFC 6120 §4.9.3.22, §11.6)`, () => {
      const h = opened();
      h.write(
        Buffer.concat([Buffer.from("<message><body>"), Buffer.from(seq), Buffer.from("</body></message>")]),
      );
      assert.equal(errorOf(h), "unsupported-encoding");
      assert.equal(h.stanzas.length, 0);
    });
  }

  it("refuses an invalid sequence split across writes", () => {
    const h = opened();
    h.write("<message><body>");
    h.write(Buffer.from([0xed]));
    h.write(Buffer.from([0xa0, 0x80]));
    assert.equal(errorOf(h), "unsupported-encoding");
  });

  it("refuses characters XML does not allow, raw or by reference", () => {
    for (const body of ["\u0001", "\u001f", "\uFFFE", "\uFFFF", "&#0;", "&#x1;", "&#xFFFE;", "&#xD800;"]) {
      const h = afterHeader(`<message><body>${body}</body></message>`);
      assert.equal(errorOf(h), "not-well-formed", JSON.stringify(body));
      assert.equal(h.stanzas.length, 0);
    }
  });
});

describe("StreamParser: restricted XML (RFC 6120 §11.1)", () => {
  it("refuses billion laughs at once, without expanding it", () => {
    let dtd = "<!DOCTYPE lolz [<!ENTITY lol 'lol'>";
    for (let i = 1; i <= 9; i++) dtd += `<!ENTITY lol${i} '${`&lol${i === 1 ? "" : i - 1};`.repeat(10)}'>`;
    dtd += "]>";
    const attack = `<?xml version='1.0'?>${dtd}<stream:stream xmlns='jabber:client' xmlns:stream='${NS.stream}'><message><body>&lol9;</body></message>`;
    const heapBefore = process.memoryUsage().heapUsed;
    const t0 = performance.now();
    const h = harness();
    h.write(attack);
    const ms = performance.now() - t0;
    assert.equal(errorOf(h), "restricted-xml");
    assert.equal(h.starts.length, 0);
    assert.equal(h.stanzas.length, 0);
    assert.ok(ms < 200, `took ${ms} ms`);
    assert.ok(process.memoryUsage().heapUsed - heapBefore < 20e6);
  });

  it("refuses a DOCTYPE as soon as it starts, before the declaration is complete", () => {
    const h = harness();
    h.write("<?xml version='1.0'?><");
    assert.deepEqual(h.errors, []);
    h.write("!DOCTYPE x [");
    assert.equal(errorOf(h), "restricted-xml");
    // Further (endless) data is ignored without being buffered.
    for (let i = 0; i < 100; i++) h.write(`<!ENTITY e${i} '${"x".repeat(1000)}'>`);
    assert.equal(h.errors.length, 1);
  });

  it("refuses a DOCTYPE inside the stream", () => {
    const h = afterHeader("<!DOCTYPE x>");
    assert.equal(errorOf(h), "restricted-xml");
  });

  it("refuses comments in the prolog, between stanzas and inside stanzas", () => {
    const prolog = harness();
    prolog.write(`<?xml version='1.0'?><!-- hi -->${HEADER.replace("<?xml version='1.0'?>", "")}`);
    assert.equal(errorOf(prolog), "restricted-xml");
    const between = afterHeader("<presence/><!-- hi --><presence/>");
    assert.equal(errorOf(between), "restricted-xml");
    assert.equal(between.stanzas.length, 1);
    const inside = afterHeader("<message><!-- hi --><body>x</body></message>");
    assert.equal(errorOf(inside), "restricted-xml");
    assert.equal(inside.stanzas.length, 0);
  });

  it("refuses processing instructions other than the XML declaration", () => {
    const prolog = harness();
    prolog.write(`<?xml version='1.0'?><?php echo 1; ?>${HEADER.replace("<?xml version='1.0'?>", "")}`);
    assert.equal(errorOf(prolog), "restricted-xml");
    const inside = afterHeader("<message><?target data?></message>");
    assert.equal(errorOf(inside), "restricted-xml");
    const between = afterHeader("<?target data?>");
    assert.equal(errorOf(between), "restricted-xml");
  });

  it("refuses undefined entities in text and attributes", () => {
    assert.equal(errorOf(afterHeader("<message><body>&foo;</body></message>")), "restricted-xml");
    assert.equal(errorOf(afterHeader("<message id='&foo;'/>")), "restricted-xml");
    assert.equal(errorOf(afterHeader("&foo;")), "restricted-xml");
    for (const name of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
      assert.equal(errorOf(afterHeader(`<message><body>&${name};</body></message>`)), "restricted-xml", name);
    }
  });

  it("accepts the predefined entities and character references", () => {
    const el = parseOne("<message id='&lt;&gt;&amp;&apos;&quot;&#65;&#x42;'/>");
    assert.equal(el.attrs.id, "<>&'\"AB");
  });
});

describe("StreamParser: well-formedness", () => {
  const cases: [string, string][] = [
    ["unbound element prefix", "<x:message/>"],
    ["unbound attribute prefix", "<message x:id='1'/>"],
    ["unbound prefix deep inside", "<message><body><x:y/></body></message>"],
    ["duplicate attribute", "<message id='1' id='2'/>"],
    [
      "duplicate attribute through two prefixes",
      "<message xmlns:a='urn:x' xmlns:b='urn:x' a:id='1' b:id='2'/>",
    ],
    ["mismatched end tag", "<message><body>hi</message></body>"],
    ["end tag of another name", "<message>hi</iq>"],
    ["unquoted attribute", "<message id=1/>"],
    ["attribute without value", "<message id/>"],
    ["< in attribute", "<message id='<'/>"],
    ["]]> in text", "<message><body>]]></body></message>"],
    ["bare ampersand", "<message><body>a & b; x</body></message>"],
    ["xmlns as element prefix", "<xmlns:message/>"],
    ["redefining xml prefix", "<message xmlns:xml='urn:other'/>"],
    ["undeclaring a prefix", "<message xmlns:a=''/>"],
  ];
  for (const [name, xml] of cases) {
    it(`refuses ${name}`, () => {
      const h = afterHeader(xml);
      assert.equal(errorOf(h), "not-well-formed");
      assert.equal(h.stanzas.length, 0);
    });
  }

  it("never delivers a stanza closed by a mismatched end tag, even split across writes", () => {
    const h = opened();
    h.write("<message><body>hi</body></mess");
    h.write("agX>");
    assert.equal(errorOf(h), "not-well-formed");
    assert.equal(h.stanzas.length, 0);
  });

  it("refuses character data between stanzas (only whitespace may separate them)", () => {
    const inChunk = afterHeader("<presence/>junk<presence/>");
    assert.equal(errorOf(inChunk), "bad-format");
    assert.equal(inChunk.stanzas.length, 1);
    const atEnd = afterHeader("<presence/> junk");
    assert.equal(errorOf(atEnd), "bad-format");
    const cdata = afterHeader("<![CDATA[junk]]>");
    assert.equal(errorOf(cdata), "bad-format");
    const wsCdata = afterHeader("<![CDATA[ ]]> x<presence/>");
    assert.equal(errorOf(wsCdata), "bad-format");
  });
});

describe("StreamParser: limits", () => {
  it("cuts off an over-size stanza while it is still arriving", () => {
    const limit = 4096;
    const h = opened({ maxStanzaBytes: limit });
    h.write("<message><body>");
    let fed = "<message><body>".length;
    const piece = "0123456789".repeat(10);
    while (h.errors.length === 0 && fed < 10 * limit) {
      h.write(piece);
      fed += piece.length;
    }
    assert.equal(errorOf(h), "policy-violation");
    assert.match(h.errors[0]!.text ?? "", /4096/);
    assert.ok(fed <= limit + piece.length, `cut off after ${fed} bytes`);
    assert.equal(h.stanzas.length, 0);
    h.write("</body></message>");
    assert.equal(h.stanzas.length, 0);
  });

  it("counts bytes, not characters, from '<' to the final '>'", () => {
    const limit = 100;
    const start = "<message><body>";
    const end = "</body></message>";
    const room = limit - start.length - end.length;
    const exact = parseOne(`${start}${"é".repeat(room / 2)}${end}`, { maxStanzaBytes: limit });
    assert.equal(exact.getChildText("body")!.length, room / 2);
    const over = afterHeader(`${start}${"é".repeat(room / 2)}x${end}`, { maxStanzaBytes: limit });
    assert.equal(errorOf(over), "policy-violation");
    // Leading whitespace does not count towards the stanza.
    parseOne(`${" ".repeat(200)}${start}${"x".repeat(room)}${end}`, { maxStanzaBytes: limit });
  });

  it("counts 1- to 4-byte characters exactly, wherever the chunks are cut", () => {
    const stanza = `<message id='€'><body>${"😀".repeat(5)}é€x</body></message>`;
    const size = Buffer.byteLength(stanza);
    const bytes = Buffer.from(`${HEADER}\r\n ${stanza} ${stanza}`);
    for (let cut = HEADER.length; cut < bytes.length; cut++) {
      const fits = harness({ maxStanzaBytes: size });
      fits.parser.write(bytes.subarray(0, cut));
      fits.parser.write(bytes.subarray(cut));
      assert.deepEqual(fits.errors, [], `cut at ${cut}`);
      assert.equal(fits.stanzas.length, 2, `cut at ${cut}`);
      const over = harness({ maxStanzaBytes: size - 1 });
      over.parser.write(bytes.subarray(0, cut));
      over.parser.write(bytes.subarray(cut));
      assert.equal(errorOf(over), "policy-violation", `cut at ${cut}`);
      assert.equal(over.stanzas.length, 0, `cut at ${cut}`);
    }
  });

  it("cuts off a stanza over the limit that arrives in a single chunk", () => {
    const h = afterHeader(`<message><body>${"x".repeat(300)}</body></message><presence/>`, {
      maxStanzaBytes: 200,
    });
    assert.equal(errorOf(h), "policy-violation");
    assert.equal(h.stanzas.length, 0);
  });

  it("limits nesting depth", () => {
    const nest = (n: number) => "<a>".repeat(n) + "</a>".repeat(n);
    const ok = parseOne(`<message>${nest(31)}</message>`, { maxDepth: 32 });
    assert.equal(ok.name, "message");
    const h = afterHeader(`<message>${nest(32)}</message>`, { maxDepth: 32 });
    assert.equal(errorOf(h), "policy-violation");
  });

  it("lets whitespace keepalives through without limit (RFC 6120 §4.6.1)", () => {
    const h = opened({ maxIdleBytes: 64 });
    for (let i = 0; i < 1000; i++) h.write(i % 2 ? " " : "\r\n\t ");
    h.write("<presence/>");
    for (let i = 0; i < 1000; i++) h.write(" ");
    h.write("<presence/>");
    assert.deepEqual(h.errors, []);
    assert.equal(h.stanzas.length, 2);
  });

  it("limits what may pile up between stanzas", () => {
    const h = opened({ maxIdleBytes: 1024 });
    h.write("<a");
    for (let i = 0; i < 100 && h.errors.length === 0; i++) h.write("a".repeat(100));
    assert.equal(errorOf(h), "policy-violation");
  });
});

describe("StreamParser: stream lifecycle", () => {
  it("reports the end of the stream and ignores what follows", () => {
    const h = afterHeader("<presence/></stream:stream>");
    assert.equal(h.ends, 1);
    assert.equal(h.stanzas.length, 1);
    h.write("<presence/>garbage");
    assert.equal(h.ends, 1);
    assert.equal(h.stanzas.length, 1);
    assert.deepEqual(h.errors, []);
  });

  it("reports the end of the stream split across writes", () => {
    const h = opened();
    h.write("</stream:str");
    assert.equal(h.ends, 0);
    h.write("eam>");
    assert.equal(h.ends, 1);
  });

  it("does not take a mismatched close of the root as the end of the stream", () => {
    const h = afterHeader("</stream:foo>");
    assert.equal(h.ends, 0);
    assert.equal(errorOf(h), "not-well-formed");
  });

  it("stops after an error: further writes are ignored", () => {
    const h = afterHeader("<message id='1' id='2'/>");
    assert.equal(errorOf(h), "not-well-formed");
    h.write("<presence/><message><body>more</body></message></stream:stream>");
    h.write(Buffer.from([0xff]));
    assert.equal(h.errors.length, 1);
    assert.equal(h.stanzas.length, 0);
    assert.equal(h.ends, 0);
  });

  it("stops after end()", () => {
    const h = opened();
    h.write("<message><body>unfin");
    h.parser.end();
    h.write("ished</body></message>");
    assert.equal(h.stanzas.length, 0);
    assert.deepEqual(h.errors, []);
  });

  it("parses a new stream header after reset() (RFC 6120 §4.3.3, §5.4.3.3, §6.4.6)", () => {
    const h = afterHeader("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    h.parser.reset();
    h.write(HEADER);
    h.write("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>");
    h.parser.reset();
    h.write(HEADER.replace("<?xml version='1.0'?>", ""));
    h.write("<iq type='set' id='b'/>");
    assert.deepEqual(h.errors, []);
    assert.equal(h.starts.length, 3);
    assert.deepEqual(
      h.stanzas.map((s) => s.name),
      ["starttls", "auth", "iq"],
    );
  });

  it("after reset() inside onStanza, drops the rest of the chunk (no STARTTLS injection)", () => {
    const h = harness({}, (el, self) => {
      if (el.name === "starttls") self.parser.reset();
    });
    h.write(`${HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='set' id='injected'/>`);
    assert.deepEqual(
      h.stanzas.map((s) => s.name),
      ["starttls"],
    );
    h.write(HEADER);
    h.write("<iq type='get' id='after'/>");
    assert.deepEqual(h.errors, []);
    assert.equal(h.starts.length, 2);
    assert.equal(h.stanzas[1]!.attrs.id, "after");
  });

  it("after reset() a new stream is fully checked again", () => {
    const h = opened();
    h.parser.reset();
    h.write("<stream:stream xmlns='jabber:client'>");
    assert.equal(errorOf(h), "bad-namespace-prefix");
    h.parser.reset();
    h.write(HEADER);
    h.write("<presence/>");
    assert.equal(h.stanzas.length, 1);
  });

  it("re-throws an exception from a handler and stops", () => {
    const h = harness({}, () => {
      throw new Error("handler bug");
    });
    h.write(HEADER);
    assert.throws(() => h.write("<presence/><presence/>"), /handler bug/);
    assert.equal(h.stanzas.length, 1);
    h.write("<presence/>");
    assert.equal(h.stanzas.length, 1);
  });
});
