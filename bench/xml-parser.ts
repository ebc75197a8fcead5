/**
 * Parse rate of StreamParser on small chat messages fed in 16 KiB chunks, next to a bare
 * saxes -> ltx loop without any of its checks (the DESIGN.md §6 baseline, ~350k stanzas/s).
 * Usage: node --import tsx bench/xml-parser.ts [stanzas=200000] [chunkBytes=16384]
 * References: RFC 6120 §4 (the stream being parsed); DESIGN.md §6.
 */
import { Element } from "ltx";
import { SaxesParser } from "saxes";
import { StreamParser } from "../server/xml/stream-parser.ts";

const count = Number(process.argv[2] ?? 200_000);
const chunkBytes = Number(process.argv[3] ?? 16_384);
const header =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
  "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";
const stanza = "<message to='a@b' id='1' type='chat'><body>hello</body></message>";

function chunks(body: string): Buffer[] {
  const all = Buffer.from(header + body);
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += chunkBytes) out.push(all.subarray(i, i + chunkBytes));
  return out;
}

function runStreamParser(input: Buffer[]): number {
  let n = 0;
  const p = new StreamParser({
    onStreamStart() {},
    onStanza() {
      n++;
    },
    onStreamEnd() {},
    onError(err) {
      throw err;
    },
  });
  for (const c of input) p.write(c);
  return n;
}

/** saxes building ltx Elements, no limits, no canonical form, no UTF-8 validation. */
function runBaseline(input: Buffer[]): number {
  let n = 0;
  const sax = new SaxesParser({ xmlns: true });
  const stack: Element[] = [];
  sax.on("opentag", (tag) => {
    if (tag.local === "stream" && stack.length === 0 && n === 0 && !sax.closed) {
      stack.push(new Element("stream"));
      return;
    }
    const attrs: Record<string, string> = {};
    for (const k in tag.attributes) attrs[k] = tag.attributes[k]!.value;
    const el = new Element(tag.name, attrs);
    stack[stack.length - 1]!.cnode(el);
    stack.push(el);
  });
  sax.on("text", (t) => {
    if (stack.length > 1) stack[stack.length - 1]!.t(t);
  });
  sax.on("closetag", () => {
    stack.pop();
    if (stack.length === 1) {
      stack[0]!.children.length = 0;
      n++;
    }
  });
  const decoder = new TextDecoder("utf-8");
  for (const c of input) sax.write(decoder.decode(c, { stream: true }));
  return n;
}

function measure(name: string, run: (input: Buffer[]) => number, input: Buffer[]): void {
  const rates: number[] = [];
  for (let round = 0; round < 7; round++) {
    const t0 = process.hrtime.bigint();
    const n = run(input);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (n !== count) throw new Error(`${name}: parsed ${n} of ${count}`);
    if (round >= 2) rates.push(n / seconds); // the first rounds warm up the JIT
  }
  rates.sort((a, b) => a - b);
  const median = rates[Math.floor(rates.length / 2)]!;
  const mb = (input.reduce((s, c) => s + c.length, 0) / 1e6).toFixed(1);
  console.log(
    `${name.padEnd(28)} ${Math.round(median).toLocaleString("en").padStart(10)} stanzas/s ` +
      `(median of ${rates.length}, ${count} stanzas, ${mb} MB, ${chunkBytes}-byte chunks)`,
  );
}

const input = chunks(stanza.repeat(count));
console.log(`node ${process.version}, stanza ${Buffer.byteLength(stanza)} bytes: ${stanza}`);
measure("saxes -> ltx (baseline)", runBaseline, input);
measure("StreamParser", runStreamParser, input);
const unicode = chunks(stanza.replace("hello", "hällo ✓ 😀").repeat(count));
measure("saxes -> ltx (non-ASCII)", runBaseline, unicode);
measure("StreamParser (non-ASCII)", runStreamParser, unicode);
