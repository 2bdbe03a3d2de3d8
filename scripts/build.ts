/**
 * Compiles the services, the command line and gen/ to JavaScript under dist/ (or the folder given
 * as the first argument), one file per source with esbuild, no bundling: `node dist/services/main.js`
 * then runs without tsx or any other development dependency (the Docker image does). paycli is
 * also bundled into one file, dist/paycli.mjs, which services/cli/paycli.js runs when it is newer
 * than the sources: one file to read instead of hundreds, so the command line starts quickly.
 * Type-checking stays with `tsc -p .`.
 */
import { readdirSync, rmSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { build } from "esbuild";

const root = resolve(import.meta.dirname, "..");
const outdir = resolve(process.argv[2] ?? join(root, "dist"));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [path] : [];
  });
}

rmSync(outdir, { recursive: true, force: true });
const entryPoints = [...sources(join(root, "services")), ...sources(join(root, "gen"))];
await build({
  entryPoints,
  outdir,
  outbase: root,
  format: "esm",
  platform: "node",
  target: "node20",
  bundle: false,
  sourcemap: false,
  logLevel: "warning",
});
// Node's own require for the CommonJS packages inside the bundle (grpc-js and its dependencies).
await build({
  entryPoints: [join(root, "services", "cli", "main.ts")],
  outfile: join(outdir, "paycli.mjs"),
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  banner: { js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);' },
  logLevel: "warning",
});
process.stdout.write(`compiled ${entryPoints.length} files into ${relative(process.cwd(), outdir) || "."}, and paycli.mjs\n`);
