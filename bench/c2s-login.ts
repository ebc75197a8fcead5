/**
 * c2s login rate: closed loop of CONCURRENCY logins at a time, each a new TCP connection →
 * STARTTLS (full handshake, no session resumption) → SCRAM-SHA-256 → resource binding → close.
 * Reports logins per second, login time p50/p99 and the server's CPU per login.
 *
 * Options (environment): BENCH_SERVERS  BENCH_LOGIN_CONCURRENCY=64  BENCH_LOGIN_SECONDS=10
 * BENCH_LOGIN_ACCOUNTS=1000
 */
import { LoadPool } from "./lib/load-pool.ts";
import { CpuMeter, load, SelfCpuMeter } from "./lib/proc-stats.ts";
import { log, ms, num, result, round, table } from "./lib/scenario.ts";
import { measureEach, type ServerUnderTest } from "./lib/servers.ts";

const CONCURRENCY = num("LOGIN_CONCURRENCY", 64);
const SECONDS = num("LOGIN_SECONDS", 10);
const WARM_SECONDS = 2;
const ACCOUNTS = num("LOGIN_ACCOUNTS", 1000);

async function measure(server: ServerUnderTest, pool: LoadPool): Promise<Record<string, unknown>> {
  await server.start({ requireTls: true });
  try {
    await server.ensureAccounts(ACCOUNTS);
    const users = Array.from({ length: ACCOUNTS }, (_, i) => i);
    const endpoint = server.endpoint(true);
    // Warm-up: JIT, the accounts cache of each server; not measured.
    await pool.login({ endpoint, users, concurrency: CONCURRENCY, durationMs: WARM_SECONDS * 1000 });
    const cpu = new CpuMeter(server.pids());
    const self = new SelfCpuMeter();
    const t0 = performance.now();
    const r = await pool.login({ endpoint, users, concurrency: CONCURRENCY, durationMs: SECONDS * 1000 });
    const seconds = (performance.now() - t0) / 1000;
    const c = cpu.lap();
    const g = self.lap();
    const out = {
      version: server.version,
      mechanism: r.mechanisms.join(", "),
      loginsPerS: Math.round(r.logins / seconds),
      failed: r.failed,
      errors: r.errors,
      p50ms: ms(r.latency.percentile(0.5)),
      p99ms: ms(r.latency.percentile(0.99)),
      serverCpu: Math.round(c.percent),
      generatorCpu: Math.round(g.percent),
      cpuMsPerLogin: r.logins > 0 ? round((c.seconds * 1000) / r.logins, 2) : Number.NaN,
      loadavg: load(),
    };
    log(
      `${server.name}: ${out.loginsPerS} logins/s (${out.mechanism}), p50 ${out.p50ms} ms, p99 ${out.p99ms} ms, ` +
        `server CPU ${out.serverCpu}% (${out.cpuMsPerLogin} ms/login), generator CPU ${out.generatorCpu}%` +
        (r.failed ? `, ${r.failed} failed: ${r.errors.join("; ")}` : ""),
    );
    return out;
  } finally {
    await server.stop();
  }
}

const pool = new LoadPool(2);
const { servers, rows } = await measureEach(
  (server) => measure(server, pool),
  (name, r) => [name, r.loginsPerS, r.p50ms, r.p99ms, r.serverCpu, r.cpuMsPerLogin, r.failed],
);
await pool.stop();
log("");
log(table(["server", "logins/s", "p50 ms", "p99 ms", "CPU %", "CPU ms/login", "failed"], rows));
result("c2s-login", {
  parameters: {
    concurrency: CONCURRENCY,
    seconds: SECONDS,
    accounts: ACCOUNTS,
    tls: "STARTTLS",
    resumption: false,
  },
  servers,
});
