// Worker-thread entry: Node 20 does not carry `--import tsx` into worker threads, so register
// tsx here, then load the TypeScript worker.
import { register } from "tsx/esm/api";

register();
await import("./load-worker.ts");
