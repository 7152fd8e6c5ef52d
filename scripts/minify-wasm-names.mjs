// Renames, in the JavaScript glue wasm-bindgen wrote, the wasm module's imports and
// exports as binaryen's --minify-imports-and-exports-and-modules renamed them in the
// module: the glue's import object (its module's key and each function's) and every
// `wasm.<export>` it calls. wasm-bindgen names each import after its function and a
// 16-digit hash, and some exports after whole Rust paths; minified, they are one or
// two letters, in the module and in the glue alike.
//
//   node scripts/minify-wasm-names.mjs MAP.json MODULE.wasm GLUE.js
//
// MAP.json is what wasm-opt printed. Fails, changing nothing, if the glue does not
// hold each name where it is expected as often as expected (an import's key once,
// its module's key once, an export it calls at least once): a module whose import is
// missing from the glue fails when it is instantiated, which the package's tests do.
import { readFileSync, writeFileSync } from "node:fs";

const [mapPath, wasmPath, gluePath] = process.argv.slice(2);
if (!gluePath) {
  console.error("usage: minify-wasm-names.mjs MAP.json MODULE.wasm GLUE.js");
  process.exit(2);
}
// wasm-opt prints the map once per pass run; each copy is the same.
const mapText = readFileSync(mapPath, "utf8");
const map = JSON.parse(mapText.slice(0, mapText.indexOf("\n}") + 2));
const module = new WebAssembly.Module(readFileSync(wasmPath));
const modules = new Set(WebAssembly.Module.imports(module).map((i) => i.module));
if (modules.size !== 1) {
  throw new Error(`expected one import module, found ${[...modules].join(", ")}`);
}
const [newModule] = modules;

let glue = readFileSync(gluePath, "utf8");
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
// Replaces `from` (a whole identifier, or what the pattern says) with `to`, which must
// be there `times` times (or at least once, when `times` is null).
function rename(pattern, to, times, what) {
  const found = glue.match(pattern)?.length ?? 0;
  if (times === null ? found === 0 : found !== times) {
    throw new Error(`${what}: found ${found} times in the glue`);
  }
  glue = glue.replace(pattern, to);
}

const oldModules = new Set(map.imports.map(([m]) => m));
for (const m of oldModules) {
  rename(new RegExp(`"${escape(m)}":`, "g"), `"${newModule}":`, 1, `import module ${m}`);
}
for (const [, from, to] of map.imports) {
  const key = new RegExp(`(?<![\\w$])${escape(from)}(?=\\s*:)`, "g");
  rename(key, to, 1, `import ${from}`);
}
for (const [from, to] of map.exports) {
  const use = new RegExp(`\\bwasm\\.${escape(from)}(?![\\w$])`, "g");
  // Some exports (the allocator's free, the abort hooks) the glue never calls.
  if (glue.match(use)) rename(use, `wasm.${to}`, null, `export ${from}`);
}

writeFileSync(gluePath, glue);
