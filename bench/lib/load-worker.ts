/**
 * One load-generator worker thread: opens sessions, offers chat traffic between session pairs at
 * a given rate, runs login loops, and reports counters and latency histograms when sampled.
 * The scenario's main thread drives two of these (bench/lib/load-pool.ts) so the generator uses
 * both cores; they share nothing but the monotonic clock.
 */
import { parentPort } from "node:worker_threads";
import { Histogram } from "./histogram.ts";
import type { Command, Endpoint, LoginResult, OpenResult, Reply, Request, Sample } from "./protocol.ts";
import { BenchSession, nowUs, type SessionHandler } from "./xmpp-client.ts";

const port = parentPort!;
const groups = new Map<string, BenchSession[]>();
const latency = new Histogram();
let sent = 0;
let skipped = 0;
let delivered = 0;
let failed = 0;

const TICK_MS = 5;

interface Traffic {
  readonly senders: BenchSession[];
  rate: number;
  window: number;
  pad: string;
  t0: number;
  offered: number;
  next: number;
  timer: NodeJS.Timeout;
}
const traffic = new Map<string, Traffic>();
/** Groups whose pairs send one way (first → second): the s2s scenario's senders and receivers. */
const oneWay = new Set<string>();
let seq = 0;

/** Receiving side of the pairs: each body is one delivered message from the partner. */
const pairHandler: SessionHandler = {
  ready() {},
  failed() {},
  body(session, stamp) {
    delivered++;
    if (stamp > 0) latency.record(nowUs() - stamp);
    const from = session.partner;
    if (from && from.inflight > 0) from.inflight--;
  },
};

function message(to: BenchSession, stamp: number, pad: string): string {
  seq++;
  return `<message to='${to.jid}' type='chat' id='b${seq}'><body>T${stamp} ${pad}</body></message>`;
}

/**
 * How many operations a paced offer (rate per second since t0, `offered` so far) owes at `now`
 * (µs). After a stall it does not burst more than 50 ms worth: the missing part counts as
 * skipped, not offered.
 */
function dueNow(pace: { rate: number; t0: number; offered: number }, now: number): number {
  const due = Math.floor((pace.rate * (now - pace.t0)) / 1e6) - pace.offered;
  const burst = Math.max(1, Math.ceil(pace.rate * 0.05));
  if (due <= burst) return due;
  pace.offered += due - burst;
  skipped += due - burst;
  return burst;
}

function tick(t: Traffic): void {
  const now = nowUs();
  const stamp = Math.round(now);
  const n = t.senders.length;
  if (n === 0) return;
  if (t.rate === Number.POSITIVE_INFINITY) {
    for (const s of t.senders) {
      let batch = "";
      while (s.inflight < t.window) {
        batch += message(s.partner!, stamp, t.pad);
        s.inflight++;
        sent++;
      }
      if (batch) s.write(batch);
    }
    return;
  }
  const due = dueNow(t, now);
  const batches = new Map<BenchSession, string>();
  for (let k = 0; k < due; k++) {
    const s = t.senders[t.next]!;
    t.next = t.next + 1 === n ? 0 : t.next + 1;
    t.offered++;
    if (s.inflight >= t.window) {
      skipped++;
      continue;
    }
    s.inflight++;
    sent++;
    batches.set(s, (batches.get(s) ?? "") + message(s.partner!, stamp, t.pad));
  }
  for (const [s, batch] of batches) s.write(batch);
}

/** Readouts sent and not yet answered, by seqnr: who asked, and when. */
const pendingReadouts = new Map<number, { session: BenchSession; stampUs: number }>();
const READOUT_TIMEOUT_US = 10e6;

/** Readers' side: the answer to readout `seqnr` arrived (XEP-0323 `done`, or an iq error). */
function readoutDone(_session: BenchSession, seqnr: number, ok: boolean): void {
  const p = pendingReadouts.get(seqnr);
  if (!p) return;
  pendingReadouts.delete(seqnr);
  if (p.session.inflight > 0) p.session.inflight--;
  if (ok) {
    delivered++;
    latency.record(nowUs() - p.stampUs);
  } else failed++;
}

/** Unanswered for too long: counted as failed, and the reader's window slot is freed. */
function expireReadouts(): void {
  const oldest = nowUs() - READOUT_TIMEOUT_US;
  for (const [seqnr, p] of pendingReadouts) {
    if (p.stampUs > oldest) break; // insertion order is send order
    pendingReadouts.delete(seqnr);
    if (p.session.inflight > 0) p.session.inflight--;
    failed++;
  }
}

/** XEP-0323 §3.1: a momentary readout request. */
function readoutRequest(to: string, seqnr: number): string {
  return `<iq type='get' to='${to}' id='q${seqnr}'><req xmlns='urn:xmpp:iot:sensordata' seqnr='${seqnr}' momentary='true'/></iq>`;
}

interface Readouts {
  readonly readers: BenchSession[];
  readonly targets: readonly string[];
  readonly rate: number;
  readonly window: number;
  readonly t0: number;
  offered: number;
  nextReader: number;
  nextTarget: number;
  readonly timer: NodeJS.Timeout;
}
const readouts = new Map<string, Readouts>();

function readoutTick(r: Readouts): void {
  const now = nowUs();
  const n = r.readers.length;
  if (n === 0 || r.targets.length === 0) return;
  const batches = new Map<BenchSession, string>();
  const send = (s: BenchSession) => {
    const to = r.targets[r.nextTarget]!;
    r.nextTarget = r.nextTarget + 1 === r.targets.length ? 0 : r.nextTarget + 1;
    seq++;
    s.inflight++;
    sent++;
    pendingReadouts.set(seq, { session: s, stampUs: now });
    batches.set(s, (batches.get(s) ?? "") + readoutRequest(to, seq));
  };
  if (r.rate === Number.POSITIVE_INFINITY) {
    for (const s of r.readers) while (s.inflight < r.window) send(s);
  } else {
    const due = dueNow(r, now);
    for (let k = 0; k < due; k++) {
      const s = r.readers[r.nextReader]!;
      r.nextReader = r.nextReader + 1 === n ? 0 : r.nextReader + 1;
      r.offered++;
      if (s.inflight >= r.window) skipped++;
      else send(s);
    }
  }
  for (const [s, batch] of batches) s.write(batch);
}

function startReadouts(cmd: Extract<Command, { op: "readouts" }>): void {
  const existing = readouts.get(cmd.group);
  if (existing) {
    clearInterval(existing.timer);
    readouts.delete(cmd.group);
  }
  if (cmd.rate <= 0) return;
  const r: Readouts = {
    readers: (groups.get(cmd.group) ?? []).filter((s) => s.isReady),
    targets: cmd.targets,
    rate: cmd.rate,
    window: cmd.window,
    t0: nowUs(),
    offered: 0,
    nextReader: 0,
    nextTarget: 0,
    timer: setInterval(() => readoutTick(r), TICK_MS),
  };
  readouts.set(cmd.group, r);
}

function startTraffic(group: string, rate: number, window: number, pad: number): void {
  const existing = traffic.get(group);
  if (existing) {
    clearInterval(existing.timer);
    traffic.delete(group);
  }
  if (rate <= 0) return;
  const sessions = groups.get(group) ?? [];
  const senders = sessions.filter(
    (s, i) => s.isReady && s.partner?.isReady && (!oneWay.has(group) || i % 2 === 0),
  );
  const t: Traffic = {
    senders,
    rate,
    window,
    pad: "x".repeat(pad),
    t0: nowUs(),
    offered: 0,
    next: 0,
    timer: setInterval(() => tick(t), TICK_MS),
  };
  traffic.set(group, t);
}

function open(cmd: Extract<Command, { op: "open" }>): Promise<OpenResult> {
  const sessions: BenchSession[] = [];
  const loginLatency = new Histogram();
  const errors: string[] = [];
  const mechanisms = new Set<string>();
  let next = 0;
  let opened = 0;
  let failed = 0;
  let inFlight = 0;
  return new Promise((resolve) => {
    const progress = setInterval(() => {
      port.postMessage({ progress: true, group: cmd.group, opened, failed });
    }, 1000);
    const finish = () => {
      clearInterval(progress);
      if (cmd.pairs) {
        for (let i = 0; i + 1 < sessions.length; i += 2) {
          const a = sessions[i]!;
          const b = sessions[i + 1]!;
          a.partner = b;
          b.partner = a;
        }
      }
      groups.set(cmd.group, [...(groups.get(cmd.group) ?? []), ...sessions]);
      if (cmd.pairs && cmd.partnerEndpoint) oneWay.add(cmd.group);
      resolve({ opened, failed, errors, loginLatency: loginLatency.counts, mechanisms: [...mechanisms] });
    };
    const handler: SessionHandler = {
      ready(s) {
        opened++;
        inFlight--;
        mechanisms.add(s.mechanism);
        loginLatency.record(s.readyUs - s.startedUs);
        launch();
      },
      failed(s, err) {
        if (s.isReady || s.readyUs > 0) {
          // An established session lost later: the server closed it (counted by the scenario).
          return;
        }
        failed++;
        inFlight--;
        if (errors.length < 5) errors.push(err.message);
        launch();
      },
      ...(cmd.readouts ? { readout: readoutDone } : { body: pairHandler.body! }),
    };
    const launch = () => {
      const late = cmd.deadline !== undefined && Date.now() > cmd.deadline;
      while (inFlight < cmd.concurrency && next < cmd.users.length && !late) {
        const k = next++;
        const user = cmd.users[k]!;
        const endpoint = cmd.pairs && cmd.partnerEndpoint && k % 2 === 1 ? cmd.partnerEndpoint : cmd.endpoint;
        inFlight++;
        sessions.push(
          new BenchSession(
            {
              ...endpointSpec(endpoint, user),
              resource: cmd.resource,
              presence: cmd.presence,
              ...(cmd.spreadSources ? { localAddress: `127.0.2.${1 + Math.floor(user / 20000)}` } : {}),
            },
            handler,
          ),
        );
      }
      if (inFlight === 0 && (next >= cmd.users.length || late)) finish();
    };
    launch();
  });
}

function endpointSpec(e: Endpoint, user: number) {
  return {
    host: e.host,
    port: e.port,
    domain: e.domain,
    username: `${e.userPrefix}${user}`,
    password: e.password,
    tls: e.tls,
  };
}

/** Closed loop: `concurrency` logins at a time, each connect → TLS → SCRAM → bind → close. */
function login(cmd: Extract<Command, { op: "login" }>): Promise<LoginResult> {
  const hist = new Histogram();
  const errors: string[] = [];
  const mechanisms = new Set<string>();
  const deadline = Date.now() + cmd.durationMs;
  let logins = 0;
  let failed = 0;
  let inFlight = 0;
  let n = 0;
  return new Promise((resolve) => {
    const handler: SessionHandler = {
      ready(s) {
        logins++;
        mechanisms.add(s.mechanism);
        hist.record(s.readyUs - s.startedUs);
        s.close();
        inFlight--;
        launch();
      },
      failed(_s, err) {
        failed++;
        inFlight--;
        if (errors.length < 5) errors.push(err.message);
        setTimeout(launch, 10);
      },
    };
    const launch = () => {
      while (inFlight < cmd.concurrency && Date.now() < deadline) {
        const user = cmd.users[n++ % cmd.users.length]!;
        inFlight++;
        new BenchSession(
          { ...endpointSpec(cmd.endpoint, user), resource: `l${n}`, presence: false },
          handler,
        );
      }
      if (inFlight === 0 && Date.now() >= deadline) {
        resolve({ logins, failed, errors, latency: hist.counts, mechanisms: [...mechanisms] });
      }
    };
    launch();
  });
}

function sample(): Sample {
  expireReadouts();
  const s: Sample = { sent, skipped, delivered, failed, latency: [...latency.counts] };
  sent = 0;
  skipped = 0;
  delivered = 0;
  failed = 0;
  latency.reset();
  return s;
}

function close(group: string): number {
  const t = traffic.get(group);
  if (t) {
    clearInterval(t.timer);
    traffic.delete(group);
  }
  const r = readouts.get(group);
  if (r) {
    clearInterval(r.timer);
    readouts.delete(group);
    for (const [seqnr, p] of pendingReadouts)
      if (r.readers.includes(p.session)) pendingReadouts.delete(seqnr);
  }
  const sessions = groups.get(group) ?? [];
  let lost = 0;
  for (const s of sessions) {
    // Bound once, gone now: the server dropped it (sessions that never opened are not counted).
    if (s.readyUs > 0 && !s.isReady) lost++;
    s.close();
  }
  groups.delete(group);
  oneWay.delete(group);
  return lost;
}

async function handle(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case "open":
      return open(cmd);
    case "traffic":
      startTraffic(cmd.group, cmd.rate, cmd.window, cmd.pad);
      return undefined;
    case "readouts":
      startReadouts(cmd);
      return undefined;
    case "sample":
      return sample();
    case "login":
      return login(cmd);
    case "close":
      return { lost: close(cmd.group) };
  }
}

port.on("message", (req: Request) => {
  handle(req.command).then(
    (data) => port.postMessage({ id: req.id, ok: true, data } satisfies Reply),
    (err: Error) =>
      port.postMessage({ id: req.id, ok: false, error: err.stack ?? String(err) } satisfies Reply),
  );
});
