/**
 * Our dialback verification requests on one outgoing stream (we are the Receiving Server asking
 * the Authoritative Server): requests wait until the stream can carry them, answers are matched
 * to requests made on that stream, and everything left when the stream ends fails.
 * References: XEP-0220 §2.1.2 (verification request and answer), §2.5 (errors), §3 (answers
 * without a request are ignored).
 */
import type { Element } from "ltx";
import { dialbackElement } from "./dialback.ts";

/** The answer to a dialback verification request (XEP-0220 §2.1.2). */
export interface VerifyOutcome {
  readonly type: "valid" | "invalid" | "error";
  /** For "error": the dialback error condition to pass on (XEP-0220 §2.5). */
  readonly condition?: string;
}

export class VerifyRequests {
  private readonly waiting = new Map<string, ((outcome: VerifyOutcome) => void)[]>();
  private readonly unsent: Element[] = [];
  private readonly from: string;
  private readonly to: string;
  private readonly timeoutMs: number;

  constructor(from: string, to: string, timeoutMs: number) {
    this.from = from;
    this.to = to;
    this.timeoutMs = timeoutMs;
  }

  /** A request for `key` on stream `id`; `send` says whether it could go out now (else it waits). */
  add(id: string, key: string, send: (request: Element) => boolean): Promise<VerifyOutcome> {
    return new Promise((resolve) => {
      const timer = setTimeout(
        () => this.settle(id, { type: "error", condition: "remote-server-timeout" }),
        this.timeoutMs,
      );
      timer.unref();
      const waiters = this.waiting.get(id) ?? [];
      waiters.push((outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      });
      this.waiting.set(id, waiters);
      const request = dialbackElement("verify", { from: this.from, to: this.to, id }, key);
      if (!send(request)) this.unsent.push(request);
    });
  }

  /** Sends what waited for the stream to open. */
  flush(send: (request: Element) => void): void {
    for (const request of this.unsent.splice(0)) send(request);
  }

  has(id: string): boolean {
    return this.waiting.has(id);
  }

  settle(id: string, outcome: VerifyOutcome): void {
    const waiters = this.waiting.get(id);
    if (!waiters) return;
    this.waiting.delete(id);
    for (const resolve of waiters) resolve(outcome);
  }

  settleAll(outcome: VerifyOutcome): void {
    for (const id of [...this.waiting.keys()]) this.settle(id, outcome);
  }
}
