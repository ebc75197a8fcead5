// A minimal TypeScript loader for the bench's "no keepNames" Hanse runs
// (BENCH_HANSE_LOADER=plain): like tsx it transpiles .ts files with esbuild as they load, but
// without esbuild's keepNames, which tsx always turns on. keepNames wraps every named function
// expression in __name(fn, "name") (an Object.defineProperty per closure created), which costs
// memory per session and CPU per stanza. Usage: node --import ./bench/lib/ts-loader.mjs main.ts
import { register } from "node:module";

register("./ts-loader-hooks.mjs", import.meta.url);
