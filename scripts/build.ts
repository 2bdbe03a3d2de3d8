/**
 * Compiles the services, the command line and gen/ to JavaScript under dist/ (or the folder given
 * as the first argument), one file per source with esbuild, no bundling: `node dist/services/main.js`
 * then runs without tsx or any other development dependency (the Docker image does). paycli is
 * also bundled into one file, dist/paycli.mjs, which services/cli/paycli.js runs when it is newer
 * than the sources: one file to read instead of hundreds, so the command line starts quickly.
 * Type-checking stays with `tsc -p .`.
 */
import { cpSync, readdirSync, rmSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { CONSOLE_BUNDLE_OPTIONS } from "../services/console/routes.js";

const root = resolve(import.meta.dirname, "..");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") ? [path] : [];
  });
}

/** Every source under services/ and gen/, one JavaScript file each, into `outdir`. */
export async function compile(outdir: string): Promise<number> {
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
  return entryPoints.length;
}

/** paycli and everything it imports in one file. */
export async function bundleCli(outfile: string): Promise<void> {
  await build({
    entryPoints: [join(root, "services", "cli", "main.ts")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    // Node's own require for the CommonJS packages inside the bundle (grpc-js and its dependencies).
    banner: { js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);' },
    logLevel: "warning",
  });
}

/** The operations console's browser app in one file, and its static files, beside its routes. */
export async function bundleConsole(outdir: string): Promise<void> {
  const dir = join(outdir, "services", "console");
  await build({ ...CONSOLE_BUNDLE_OPTIONS, entryPoints: [...CONSOLE_BUNDLE_OPTIONS.entryPoints], target: [...CONSOLE_BUNDLE_OPTIONS.target], outfile: join(dir, "console-app.js") });
  rmSync(join(dir, "app"), { recursive: true, force: true });
  cpSync(join(root, "services", "console", "static"), join(dir, "static"), { recursive: true });
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const outdir = resolve(process.argv[2] ?? join(root, "dist"));
  const count = await compile(outdir);
  await bundleCli(join(outdir, "paycli.mjs"));
  await bundleConsole(outdir);
  process.stdout.write(`compiled ${count} files into ${relative(process.cwd(), outdir) || "."}, and paycli.mjs\n`);
}
