/**
 * Test helpers for storage: a cached PGlite template data directory, temporary data dirs, and
 * the list of engines every storage test runs against.
 * References: DESIGN.md §6 (a new PGlite data dir costs 5-7 s of initdb, a copy well under one).
 *
 * The template is built once per machine and PGlite version in
 * `<tmpdir>/hanse-test-cache/pglite-template-<version>`: built in a private directory by the real
 * engine (so it is exactly what a broker creates), cleanly stopped, then renamed into place.
 * rename(2) is atomic, so racing test processes each see either no template or a whole one; a
 * loser of the race discards its copy.
 */

import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createDatabase } from "../../test/support/postgres.ts";
import { silentLogger } from "../observability/logger.ts";
import { startEmbeddedEngine } from "./embedded.ts";
import { embeddedPaths, type StorageConfig } from "./open.ts";

const run = promisify(execFile);

async function pgliteVersion(): Promise<string> {
  // The package does not export its package.json; find it next to the resolved entry point.
  let dir = dirname(fileURLToPath(import.meta.resolve("@electric-sql/pglite")));
  for (;;) {
    try {
      const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8")) as {
        name?: string;
        version: string;
      };
      if (pkg.name === "@electric-sql/pglite") return pkg.version;
    } catch {
      // not here: go up
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find @electric-sql/pglite's package.json");
    dir = up;
  }
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** Build directories of processes killed mid-build; a build takes seconds, so an hour is safe. */
async function removeAbandonedBuilds(cache: string): Promise<void> {
  for (const name of await readdir(cache)) {
    if (!name.startsWith("building-")) continue;
    const info = await stat(join(cache, name)).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > 3_600_000)
      await rm(join(cache, name), { recursive: true, force: true });
  }
}

let template: Promise<string> | undefined;

/** Path of the ready template cluster, building it on first use on this machine. */
export function pgliteTemplate(): Promise<string> {
  template ??= (async () => {
    const cache = join(tmpdir(), "hanse-test-cache");
    const final = join(cache, `pglite-template-${await pgliteVersion()}`);
    if (await exists(join(final, "PG_VERSION"))) return final;
    await mkdir(cache, { recursive: true });
    await removeAbandonedBuilds(cache);
    const work = await mkdtemp(join(cache, "building-"));
    try {
      const socketPath = join(work, "s");
      const engine = await startEmbeddedEngine({
        pgdata: join(work, "db"),
        socketPath,
        maxConnections: 2,
        log: silentLogger(),
      });
      await engine.stop();
      try {
        await rename(join(work, "db"), final);
      } catch (err) {
        // Another process won the race; its template is as good as ours.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "ENOTEMPTY" && code !== "EEXIST") throw err;
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
    return final;
  })();
  return template;
}

/**
 * Fills `<dataDir>/db` (where openStorage's embedded engine looks) with a copy of the template,
 * so opening it skips initdb. `dataDir` is a Hanse data_dir, created if missing.
 */
export async function embeddedDataDirFromTemplate(dataDir: string): Promise<void> {
  const source = await pgliteTemplate();
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const target = embeddedPaths(dataDir).pgdata;
  // cp(1) copies the template's ~1000 files about 2.5x faster than fs.cp.
  await run("cp", ["-R", `${source}/.`, target]).catch(() => cp(source, target, { recursive: true }));
}

const tempDirs = new Set<string>();
let cleanupHooked = false;

/** A fresh, short temporary directory, deleted when the process exits. */
export function tempDataDir(prefix = "hanse-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  if (!cleanupHooked) {
    cleanupHooked = true;
    process.once("exit", () => {
      for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}

export interface TestEngine {
  readonly name: "embedded" | "postgres";
  /** A configuration pointing at a fresh, empty database on this engine. */
  storageConfig(): Promise<StorageConfig>;
}

/** Every storage-backed test runs once per engine (DESIGN.md §1.5: the same SQL on both). */
export const testEngines: readonly TestEngine[] = [
  {
    name: "embedded",
    async storageConfig() {
      const dataDir = tempDataDir();
      await embeddedDataDirFromTemplate(dataDir);
      return { data_dir: dataDir, database: { max_connections: 4 } };
    },
  },
  {
    name: "postgres",
    async storageConfig() {
      return {
        data_dir: tempDataDir(),
        database: { url: await createDatabase("hanse"), max_connections: 4 },
      };
    },
  },
];
