/**
 * A random secret kept in the data directory: made once (32 random bytes as hex, file mode 0600,
 * written atomically), read on every later start. Secrets that must outlive a restart live here:
 * the dialback secret (keys handed out before a restart still verify) and the seed of the fake
 * SCRAM credentials for unknown users (a restart must not change what an unknown user looks like).
 */
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Reads `<dataDir>/<folder>/<name>`, or makes it; returns the 64 hex characters. */
export async function loadSecretFile(dataDir: string, folder: string, name: string): Promise<string> {
  const dir = join(dataDir, folder);
  const file = join(dir, name);
  let value: string | undefined;
  try {
    value = (await readFile(file, "utf8")).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  if (!value || !/^[0-9a-f]{64}$/.test(value)) {
    value = randomBytes(32).toString("hex");
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${value}\n`, { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, file);
  }
  return value;
}
