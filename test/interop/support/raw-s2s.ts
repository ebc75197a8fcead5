/**
 * A raw server-to-server peer for tests that must misbehave on purpose (forged addresses, forged
 * dialback keys): writes XML by hand, waits for patterns in what comes back. No server code.
 * References: RFC 6120 §4.7 (headers), §5.4 (STARTTLS), XEP-0178 (SASL EXTERNAL), XEP-0220.
 */
import net from "node:net";
import tls from "node:tls";

export const NS_STREAMS = "http://etherx.jabber.org/streams";

export function s2sHeader(from: string, to: string): string {
  return (
    `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='${NS_STREAMS}' ` +
    `xmlns:db='jabber:server:dialback' from='${from}' to='${to}' version='1.0'>`
  );
}

export class RawS2s {
  private socket: net.Socket;
  private buffer = "";
  private waiters = new Set<() => void>();
  private ended = false;
  /** Resolves when the server closed the connection. */
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.listen(socket);
  }

  static connect(host: string, port: number): Promise<RawS2s> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port }, () => {
        socket.off("error", reject);
        resolve(new RawS2s(socket));
      });
      socket.once("error", reject);
    });
  }

  private listen(socket: net.Socket): void {
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      this.buffer += chunk;
      for (const wake of this.waiters) wake();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.ended = true;
      for (const wake of this.waiters) wake();
      this.resolveClosed();
    });
  }

  send(data: string): void {
    this.socket.write(data);
  }

  /** Waits for `pattern` in the received text, returns the match and drops everything before its end. */
  expect(pattern: RegExp, timeoutMs = 5000): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = pattern.exec(this.buffer);
        if (m) {
          this.buffer = this.buffer.slice(m.index + m[0].length);
          finish();
          resolve(m);
          return true;
        }
        if (this.ended) {
          finish();
          reject(new Error(`connection closed before ${pattern}; received: ${this.buffer}`));
          return true;
        }
        return false;
      };
      const wake = () => void check();
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${pattern} within ${timeoutMs} ms; received: ${this.buffer}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
      };
      if (!check()) this.waiters.add(wake);
    });
  }

  /** STARTTLS after <proceed/>: the TLS client side with the given options (client certificate, CA). */
  async startTls(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
    const plain = this.socket;
    plain.removeAllListeners("data");
    plain.removeAllListeners("close");
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: plain, rejectUnauthorized: false, ...options }, () => resolve(s));
      s.once("error", reject);
    });
    this.buffer = "";
    this.socket = secure;
    this.listen(secure);
    return secure;
  }

  /** The id of the server's latest stream header (XEP-0220: the dialback key is bound to it). */
  streamId = "";

  /**
   * Opens a stream from `from` to `to`, negotiates STARTTLS (with `tlsOptions`) and reads the
   * features of the encrypted stream; returns them.
   */
  async openSecure(from: string, to: string, tlsOptions: tls.ConnectionOptions): Promise<string> {
    this.send(s2sHeader(from, to));
    await this.expect(/<starttls[^>]*urn:ietf:params:xml:ns:xmpp-tls/);
    await this.expect(/<\/stream:features>/);
    this.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    await this.expect(/<proceed[^>]*\/>/);
    await this.startTls({ servername: to, ...tlsOptions });
    this.send(s2sHeader(from, to));
    this.streamId = (await this.expect(/<stream:stream[^>]*\sid=['"]([^'"]+)['"]/))[1]!;
    return (await this.expect(/<stream:features>([\s\S]*?)<\/stream:features>|<stream:features\/>/))[0];
  }

  close(): void {
    this.socket.destroy();
  }
}
