/**
 * `hanse thing qr URI [--png FILE | --svg FILE]`: prints the QR code of an iotdisco URI (or an XSF
 * `IoTDisco;...` string) on the terminal, or writes it as PNG or SVG. Called from server/main.ts.
 * References: XEP-0347 §3.9, §6.7 (QR codes made locally, never by an external service).
 */
import { writeFile } from "node:fs/promises";
import type { IotDisco } from "./iotdisco.ts";
import { renderQr } from "./qr.ts";

export const THING_USAGE = `  hanse thing qr URI [--png FILE | --svg FILE]
                                              print the QR code of an iotdisco URI (or write PNG/SVG)`;

function describe(decoded: IotDisco): string {
  switch (decoded.kind) {
    case "claim":
      return `claim URI with ${decoded.tags.length} tags`;
    case "search":
      return `search URI with ${decoded.operators.length} operators`;
    default:
      return `direct reference to ${decoded.jid}`;
  }
}

/**
 * Runs `hanse thing ...`. `usage(message)` builds the caller's usage error (exit code 2); other
 * failures throw an Error with a one-line message.
 */
export async function thingCommand(
  args: { sub: string | undefined; uri: string | undefined; png?: string; svg?: string },
  usage: (message: string) => Error,
): Promise<number> {
  if (args.sub !== "qr") throw usage(`hanse thing qr URI [--png FILE | --svg FILE]`);
  if (!args.uri) throw usage("hanse thing qr needs a URI, e.g. iotdisco:MAN=example.org;SN=1;KEY=...");
  if (args.png && args.svg) throw usage("give --png or --svg, not both");
  const uri = args.uri.trim();
  if (args.png) {
    const { data, decoded } = await renderQr(uri, "png");
    await writeFile(args.png, data);
    console.log(`wrote ${args.png} (${describe(decoded)})`);
  } else if (args.svg) {
    const { data, decoded } = await renderQr(uri, "svg");
    await writeFile(args.svg, data);
    console.log(`wrote ${args.svg} (${describe(decoded)})`);
  } else {
    const { data } = await renderQr(uri, "terminal");
    process.stdout.write(data);
  }
  return 0;
}
