// Preloaded into the Hanse broker by the bench only (node --expose-gc --import this-file):
// on SIGUSR2 it runs a full garbage collection and writes process.memoryUsage() to the file
// named by HANSE_BENCH_MEMORY_FILE, so idle memory is read after garbage is gone and can be
// split into JS heap, external (Buffers, TLS) and the rest.
// With HANSE_BENCH_HEAP_SNAPSHOT=DIR it also writes a heap snapshot there (slow: seconds).
import { writeFileSync } from "node:fs";
import { writeHeapSnapshot } from "node:v8";

process.on("SIGUSR2", () => {
  globalThis.gc?.();
  globalThis.gc?.();
  const file = process.env.HANSE_BENCH_MEMORY_FILE;
  const memory = process.memoryUsage();
  // HANSE_BENCH_HEAP_SNAPSHOT=DIR: also a heap snapshot per reading (for bench/heap-summary.ts).
  const dir = process.env.HANSE_BENCH_HEAP_SNAPSHOT;
  if (dir) writeHeapSnapshot(`${dir}/hanse-${Date.now()}.heapsnapshot`);
  if (file) writeFileSync(file, JSON.stringify({ at: Date.now(), ...memory }));
});
