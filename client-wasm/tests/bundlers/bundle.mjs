// Bundles code that imports the browser package by name, as an application does,
// with webpack (production mode: tree shaking and the package's `sideEffects` in
// force), runs the bundle under Node, and checks that what the package's entry adds
// to the classes (`for await`, `subscribe`) is there. Exits non-zero when not.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import webpack from "webpack";

const pkg = resolve(import.meta.dirname, "../../pkg");
const work = mkdtempSync(join(tmpdir(), "gapless-bundle-"));
const entries = {
  // Named imports only: the entry's own exports unused.
  named: 'import { GaplessStream, GaplessSession } from "gapless-wasm";',
  // The default export too, as the README shows.
  default: 'import init, { GaplessStream, GaplessSession } from "gapless-wasm"; void init;',
};
const check = `
const has = (C) => typeof C.prototype.subscribe === "function"
  && typeof C.prototype[Symbol.asyncIterator] === "function";
console.log(JSON.stringify({ stream: has(GaplessStream), session: has(GaplessSession) }));
`;

function bundle(name, source) {
  writeFileSync(join(work, `${name}.mjs`), source + check);
  return new Promise((done, fail) => {
    webpack({
      mode: "production",
      target: "node",
      entry: join(work, `${name}.mjs`),
      output: { path: join(work, name), filename: "out.mjs", module: true },
      experiments: { outputModule: true },
      resolve: { alias: { "gapless-wasm": pkg } },
    }).run((error, stats) => {
      if (error || stats.hasErrors()) fail(error ?? new Error(stats.toString("errors-only")));
      else done(join(work, name, "out.mjs"));
    });
  });
}

let failed = 0;
try {
  for (const [name, source] of Object.entries(entries)) {
    const out = await bundle(name, source);
    const said = JSON.parse(execFileSync(process.execPath, [out], { encoding: "utf8" }));
    const ok = said.stream && said.session;
    console.log(`${ok ? "ok" : "FAILED"}: webpack bundle of ${name} imports: ${JSON.stringify(said)}`);
    if (!ok) failed += 1;
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed === 0 ? 0 : 1);
