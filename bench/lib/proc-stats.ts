/**
 * What the bench reads from /proc about a server under test (Linux only): CPU time and resident
 * memory of its process tree, and the kernel's memory for sockets.
 * References: proc(5) (/proc/PID/stat fields 14-15 utime/stime in clock ticks, /proc/PID/status
 * VmRSS, /proc/meminfo Slab, /proc/net/sockstat "TCP: ... mem" in pages).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();
const PAGE = 4096;

function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces: split after its closing parenthesis.
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** The pid and all its descendants (Erlang's beam.smp has helper children, for instance). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (!f) continue;
    const ppid = Number(f[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** CPU seconds (user + system) used so far by the tree. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    // After the name: state is f[0], so utime (field 14) is f[11] and stime (15) is f[12].
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / CLK_TCK;
}

/** Resident memory of the tree, in KiB. */
export function rssKiB(pids: readonly number[]): number {
  let kib = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) kib += Number(m[1]);
    } catch {
      // gone
    }
  }
  return kib;
}

export interface KernelMemory {
  /** Slab (kernel object caches: sockets, files, epoll items, dentries), KiB. */
  readonly slabKiB: number;
  /** TCP buffer memory (sockstat "mem"), KiB. */
  readonly tcpKiB: number;
  /** TCP sockets in use, system-wide. */
  readonly tcpInUse: number;
}

export function kernelMemory(): KernelMemory {
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const slab = Number(/^Slab:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0);
  const sockstat = readFileSync("/proc/net/sockstat", "utf8");
  const tcp = /^TCP: inuse (\d+) .* mem (\d+)/m.exec(sockstat);
  return {
    slabKiB: slab,
    tcpKiB: (Number(tcp?.[2] ?? 0) * PAGE) / 1024,
    tcpInUse: Number(tcp?.[1] ?? 0),
  };
}

/** A CPU meter for a process tree: percentage of one core between two calls. */
export class CpuMeter {
  private readonly pids: readonly number[];
  private lastCpu: number;
  private lastAt: number;

  constructor(pids: readonly number[]) {
    this.pids = pids;
    this.lastCpu = cpuSeconds(pids);
    this.lastAt = performance.now();
  }

  /** Returns CPU seconds and % of one core since the previous call. */
  lap(): { seconds: number; percent: number } {
    const cpu = cpuSeconds(this.pids);
    const at = performance.now();
    const seconds = cpu - this.lastCpu;
    const percent = (100 * seconds) / ((at - this.lastAt) / 1000);
    this.lastCpu = cpu;
    this.lastAt = at;
    return { seconds, percent };
  }
}

/** CPU of this process (the generator: main thread + its workers), same shape as CpuMeter. */
export class SelfCpuMeter {
  private last = process.cpuUsage();
  private lastAt = performance.now();

  lap(): { seconds: number; percent: number } {
    const now = process.cpuUsage();
    const at = performance.now();
    const seconds = (now.user - this.last.user + now.system - this.last.system) / 1e6;
    const percent = (100 * seconds) / ((at - this.lastAt) / 1000);
    this.last = now;
    this.lastAt = at;
    return { seconds, percent };
  }
}

export function load(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(" ");
}

/** The soft and hard limits on open files of this process. */
export function fileLimit(): { soft: number; hard: number } {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(
    readFileSync("/proc/self/limits", "utf8"),
  );
  const n = (s: string | undefined) => (s === "unlimited" || !s ? Number.POSITIVE_INFINITY : Number(s));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}
