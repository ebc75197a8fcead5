/**
 * A minimal, independent XEP-0198 client for tests: logs in over a raw stream, enables stream
 * management with resumption, counts handled stanzas, answers <r/>, and can drop its TCP
 * connection without a closing handshake, then resume (or log in again).
 * It shares no code with the server; it parses only what it needs.
 * References: XEP-0198 §4 (enable, h), §5 (acks), §6 (resumption).
 */
import { RawStream } from "./raw-stream.ts";

const NS_SM = "urn:xmpp:sm:3";
/** The next top-level element at the start of the unread text: an SM nonza or a stanza. */
const NEXT = new RegExp(
  `^\\s*(?:<(r|a|enabled|resumed|failed)\\b[^>]*?(?:/>|>[\\s\\S]*?</\\1>)` +
    `|<(message|presence|iq)\\b[^>]*?(?:/>|>[\\s\\S]*?</\\2>))`,
);

export interface SmDeviceOptions {
  readonly port: number;
  readonly ca: string;
  readonly username: string;
  readonly password: string;
  readonly resource: string;
  /** Called for every message stanza received (the raw XML). */
  readonly onMessage: (xml: string) => void;
}

export class SmDevice {
  private raw: RawStream | undefined;
  private smId = "";
  /** Stanzas handled in the current stream-management session (our 'h'). */
  private h = 0;
  private pump: Promise<void> | undefined;
  private readonly opts: SmDeviceOptions;

  constructor(opts: SmDeviceOptions) {
    this.opts = opts;
  }

  /** Logs in, binds, enables SM with resumption and sends initial presence. */
  async start(): Promise<void> {
    const raw = await this.login(true);
    await raw.send(`<enable xmlns='${NS_SM}' resume='true'/>`);
    const enabled = await raw.waitFor(/<enabled\b[^>]*\/?>/);
    this.smId = /\bid=["']([^"']+)["']/.exec(enabled[0])?.[1] ?? "";
    if (!this.smId) throw new Error(`no resumption id: ${enabled[0]}`);
    this.h = 0; // XEP-0198 §4: counting starts at <enabled/>
    await raw.send("<presence/>");
    this.run(raw);
  }

  /** Drops the TCP connection at once: no </stream:stream>, no final ack. */
  async cut(): Promise<void> {
    const raw = this.raw;
    this.raw = undefined;
    raw?.destroy();
    await this.pump?.catch(() => {});
  }

  /** Resumes the previous session; returns false when the server refused (then call start()). */
  async resume(): Promise<boolean> {
    const raw = await this.login(false);
    await raw.send(`<resume xmlns='${NS_SM}' previd='${this.smId}' h='${this.h}'/>`);
    const answer = await raw.waitFor(/<(resumed|failed)\b[^>]*?(?:\/>|>[\s\S]*?<\/\1>)/);
    if (answer[1] === "failed") {
      raw.destroy();
      this.raw = undefined;
      return false;
    }
    this.run(raw);
    return true;
  }

  async stop(): Promise<void> {
    const raw = this.raw;
    this.raw = undefined;
    if (raw?.writable) {
      await raw.send(`<a xmlns='${NS_SM}' h='${this.h}'/>`);
      await raw.closeStream().catch(() => raw.destroy());
    }
    await this.pump?.catch(() => {});
  }

  private async login(bind: boolean): Promise<RawStream> {
    const { port, ca, username, password, resource } = this.opts;
    const raw = await RawStream.login({
      port,
      ca,
      username,
      password,
      resource,
      mechanism: "SCRAM-SHA-256",
      bind,
    });
    this.raw = raw;
    return raw;
  }

  private run(raw: RawStream): void {
    this.pump = (async () => {
      while (this.raw === raw) {
        let m: RegExpExecArray;
        try {
          m = await raw.waitFor(NEXT, 60_000);
        } catch {
          return; // cut, or closed by the server
        }
        const element = m[0].trim();
        if (m[2]) {
          this.h = (this.h + 1) % 2 ** 32; // XEP-0198 §4: every stanza counts
          if (m[2] === "message") this.opts.onMessage(element);
        } else if (m[1] === "r") {
          await raw.send(`<a xmlns='${NS_SM}' h='${this.h}'/>`);
        }
      }
    })();
  }
}
