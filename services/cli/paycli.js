#!/usr/bin/env node
// The `paycli` executable (package.json "bin"). Runs the bundle `npm run build` makes
// (dist/paycli.mjs) when it is newer than every source under services/ and gen/, and otherwise
// the TypeScript entry point through tsx (slower to start, always current).
import { existsSync, readdirSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const bundle = `${root}dist/paycli.mjs`;

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (e.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

if (existsSync(bundle) && statSync(bundle).mtimeMs >= Math.max(newestSource(`${root}services`), newestSource(`${root}gen`))) {
  await import(bundle);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import("./main.ts");
}
