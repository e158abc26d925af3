// Puts core.wasm next to the Worker sources (src/core.wasm) before wrangler bundles them.
//
// core.wasm is built from src/core/ by CMake (`cmake --build build` writes build/core.wasm) and
// is never committed: this copy step runs as wrangler's [build] command, so `wrangler dev`,
// `wrangler deploy` and the dry run always bundle the core of the checked-out sources.
// CORE_WASM=/path/to/core.wasm overrides the source. When the file is missing and a CMake build
// directory exists, the core_wasm target is built first.
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const worker = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const root = resolve(worker, "..");
const src = process.env.CORE_WASM ? resolve(process.env.CORE_WASM) : join(root, "build", "core.wasm");
const dst = join(worker, "src", "core.wasm");

if (!existsSync(src) && !process.env.CORE_WASM && existsSync(join(root, "build", "CMakeCache.txt"))) {
  const r = spawnSync("cmake", ["--build", join(root, "build"), "--target", "core_wasm"], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
if (!existsSync(src)) {
  console.error(
    `copy-wasm: ${src} does not exist. Build it first from the repository root:\n` +
      `  cmake -S . -B build -G Ninja && cmake --build build --target core_wasm\n` +
      `(needs clang with the wasm32 target; scripts/deps.sh installs it), or set CORE_WASM=/path/to/core.wasm.`
  );
  process.exit(1);
}
const bytes = readFileSync(src);
if (bytes.length < 8 || bytes.readUInt32LE(0) !== 0x6d736100) {
  console.error(`copy-wasm: ${src} is not a WebAssembly module`);
  process.exit(1);
}
mkdirSync(dirname(dst), { recursive: true });
if (!existsSync(dst) || !readFileSync(dst).equals(bytes)) copyFileSync(src, dst);
console.error(`copy-wasm: ${dst} <- ${src} (${statSync(dst).size} bytes)`);
