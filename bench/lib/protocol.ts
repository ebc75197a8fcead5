/** Messages between a scenario (main thread) and its load workers (worker threads). */

/** Where and how sessions connect. Accounts are `${userPrefix}${index}` with one password. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly domain: string;
  readonly userPrefix: string;
  readonly password: string;
  readonly tls: boolean;
}

export type Command =
  | {
      readonly op: "open";
      readonly group: string;
      readonly endpoint: Endpoint;
      /** Account indices; with `pairs`, [a0, b0, a1, b1, …] and each pair messages itself. */
      readonly users: readonly number[];
      readonly resource: string;
      readonly presence: boolean;
      readonly pairs: boolean;
      /**
       * With `pairs`: the second session of each pair logs in here instead (a user of another
       * server, the s2s scenario), and only the first one sends (one direction, over federation).
       */
      readonly partnerEndpoint?: Endpoint;
      /** The sessions read sensors (XEP-0323 readout answers) instead of receiving chat. */
      readonly readouts?: boolean;
      /** Handshakes in flight at once in this worker. */
      readonly concurrency: number;
      /** Use source address 127.0.2.(1 + index / 20000): more than one address's ephemeral ports. */
      readonly spreadSources: boolean;
      /** Date.now() after which no new session is started (the in-flight ones still finish). */
      readonly deadline?: number;
    }
  | {
      readonly op: "traffic";
      readonly group: string;
      /** Messages per second offered by this worker; 0 stops; Infinity = as fast as windows allow. */
      readonly rate: number;
      /** Messages a session may have in flight (sent, not yet received by its partner). */
      readonly window: number;
      /** Body filler length in characters. */
      readonly pad: number;
    }
  | {
      readonly op: "readouts";
      readonly group: string;
      /** Full JIDs of the things to read, in turn. */
      readonly targets: readonly string[];
      /** Readout requests per second offered by this worker; 0 stops; Infinity = fill windows. */
      readonly rate: number;
      /** Readouts a reader may have unanswered. */
      readonly window: number;
    }
  | { readonly op: "sample" }
  | {
      readonly op: "login";
      readonly endpoint: Endpoint;
      readonly users: readonly number[];
      readonly concurrency: number;
      readonly durationMs: number;
    }
  | { readonly op: "close"; readonly group: string };

export interface Request {
  readonly id: number;
  readonly command: Command;
}

/** Counters since the previous "sample" (then reset). */
export interface Sample {
  readonly sent: number;
  /** Messages not sent because the sender's window was full (the server is behind). */
  readonly skipped: number;
  readonly delivered: number;
  readonly latency: number[];
  /** Readouts refused (iq error) or unanswered for 10 s. */
  readonly failed: number;
}

export interface OpenResult {
  readonly opened: number;
  readonly failed: number;
  readonly errors: string[];
  readonly loginLatency: number[];
  readonly mechanisms: string[];
}

export interface LoginResult {
  readonly logins: number;
  readonly failed: number;
  readonly errors: string[];
  readonly latency: number[];
  readonly mechanisms: string[];
}

export type Reply =
  | { readonly id: number; readonly ok: true; readonly data: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string };

export interface Progress {
  readonly progress: true;
  readonly group: string;
  readonly opened: number;
  readonly failed: number;
}
