/**
 * QR codes for iotdisco URIs and XSF QR strings, for the `hanse thing qr` command, the portal and
 * the device SDK (a thing with a display shows its claim code while unclaimed).
 * References: XEP-0347 §3.9 (the claim data travels as a QR code, UTF-8), §6.7 (make QR codes
 * locally: an external service would see the KEY), ISO/IEC 18004 via the `qrcode` package
 * (DESIGN.md §5).
 */
import QRCode from "qrcode";
import { decodeIotDisco, type IotDisco } from "./iotdisco.ts";

export type QrFormat = "terminal" | "png" | "svg";

export interface QrOptions {
  /** Error correction (default M: a printed sticker survives some dirt). */
  readonly errorCorrection?: "L" | "M" | "Q" | "H";
  /** PNG pixels per module (default 8). */
  readonly scale?: number;
}

/**
 * Renders `text` (checked first: it must decode as an iotdisco URI or QR string) as a QR code:
 * a string for "terminal" and "svg", PNG bytes for "png". Returns what the text decoded to, too.
 */
export async function renderQr(
  text: string,
  format: "png",
  opts?: QrOptions,
): Promise<{ data: Buffer; decoded: IotDisco }>;
export async function renderQr(
  text: string,
  format: "terminal" | "svg",
  opts?: QrOptions,
): Promise<{ data: string; decoded: IotDisco }>;
export async function renderQr(
  text: string,
  format: QrFormat,
  opts: QrOptions = {},
): Promise<{ data: Buffer | string; decoded: IotDisco }> {
  const decoded = decodeIotDisco(text); // refuse to print something no owner could use
  const errorCorrectionLevel = opts.errorCorrection ?? "M";
  // Byte mode carries the UTF-8 of the text (XEP-0347 §3.9).
  const segments = [{ data: Buffer.from(text, "utf8"), mode: "byte" as const }];
  switch (format) {
    case "png":
      return {
        data: await QRCode.toBuffer(segments, {
          type: "png",
          errorCorrectionLevel,
          scale: opts.scale ?? 8,
          margin: 4,
        }),
        decoded,
      };
    case "svg":
      return {
        data: await QRCode.toString(segments, { type: "svg", errorCorrectionLevel, margin: 4 }),
        decoded,
      };
    default:
      return {
        data: await QRCode.toString(segments, { type: "terminal", small: true, errorCorrectionLevel }),
        decoded,
      };
  }
}
