/**
 * QR codes of iotdisco URIs decode back to the same text with an independent decoder (zbarimg,
 * Debian's zbar-tools), from the library function and from `hanse thing qr`.
 * References: XEP-0347 §3.9 (claim data in a QR code, UTF-8), §6.7 (QR codes made locally).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { tempDataDir } from "../server/storage/testing.ts";
import { encodeIotDisco } from "../thing-registry/iotdisco.ts";
import { renderQr } from "../thing-registry/qr.ts";
import { runHanse } from "./support/broker-process.ts";

const run = promisify(execFile);

/** zbarimg prints each symbol's data; --raw drops the "QR-Code:" prefix, -q the statistics. */
async function zbar(file: string): Promise<string> {
  const { stdout } = await run("zbarimg", ["--raw", "-q", file]);
  return stdout.replace(/\n$/, "");
}

describe("QR codes", () => {
  const dir = tempDataDir("hanse-qr-");
  const claim = encodeIotDisco({
    kind: "claim",
    tags: [
      { type: "str", name: "MAN", value: "acme.test" },
      { type: "str", name: "MODEL", value: "TH-2 ü;=" },
      { type: "str", name: "SN", value: "000917" },
      { type: "num", name: "V", value: 2.1 },
      { type: "str", name: "KEY", value: "f3c9e0a7b11d4c0b9e2a" },
    ],
    registry: "registry.acme.test",
  });

  test("a PNG decodes back to the same URI with zbarimg", async () => {
    const search = "iotdisco:MAN=acme.test;SN~*0009*;#V>=2;#V<3;R=registry.acme.test";
    const legacy = "IoTDisco;SN:394872348732948723;MAN:www.ktc.se;MODEL:IMC;#V:1.2;KEY:4857402340298342";
    for (const [i, text] of [claim, search, legacy].entries()) {
      const { data } = await renderQr(text, "png");
      assert.deepEqual([...data.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "a PNG");
      const file = join(dir, `lib-${i}.png`);
      writeFileSync(file, data);
      assert.equal(await zbar(file), text);
    }
    const svg = await renderQr(claim, "svg");
    assert.match(svg.data, /^<svg[\s\S]*<\/svg>\s*$/);
    await assert.rejects(renderQr("not a uri", "png"), /not an iotdisco URI/);
  });

  test("hanse thing qr: terminal, --png (decoded by zbarimg), --svg and errors", async () => {
    const png = join(dir, "cli.png");
    const wrote = await runHanse(["thing", "qr", claim, "--png", png]);
    assert.equal(wrote.code, 0, wrote.stderr);
    assert.match(wrote.stdout, /wrote .*cli\.png \(claim URI with 5 tags\)/);
    assert.equal(await zbar(png), claim);

    const svg = join(dir, "cli.svg");
    const wroteSvg = await runHanse(["thing", "qr", "iotdisco:JID=th2@acme.test", "--svg", svg]);
    assert.equal(wroteSvg.code, 0, wroteSvg.stderr);
    assert.match(readFileSync(svg, "utf8"), /<svg/);

    const terminal = await runHanse(["thing", "qr", claim]);
    assert.equal(terminal.code, 0, terminal.stderr);
    assert.match(terminal.stdout, /[▀▄█]/u, "block characters");

    const bad = await runHanse(["thing", "qr", "iotdisco:SN=1;sn=2"]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, "hanse: tag SN appears twice without forming a range\n");
    const missing = await runHanse(["thing", "qr"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^hanse: hanse thing qr needs a URI/);
  });
});
