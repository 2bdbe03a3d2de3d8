/**
 * paycli's start time: the bundle (dist/paycli.mjs, as `paycli` and `npm run cli` run it) against
 * the TypeScript through tsx, and against a bare `node -e ''` of the same run as the baseline.
 * `--help` measures start-up alone; `balances` against a closed port adds loading the gRPC client
 * and one refused connection (exit 3). Medians of CLI_RUNS runs (default 7), run one after another.
 *
 *   npm run build && npx tsx bench/cliStartup.ts
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RUNS = Number(process.env.CLI_RUNS ?? 7);

if (!existsSync(join(ROOT, "dist", "paycli.mjs"))) throw new Error("dist/paycli.mjs is missing: run `npm run build` first");

const server = createServer();
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const closed = (server.address() as { port: number }).port;
await new Promise<void>((r) => server.close(() => r()));

const env = { ...process.env, NODE_OPTIONS: "", PAYMENT_ADDRESS: "", MERCHANT_ADDRESS: "", RECON_ADDRESS: "" };
const cases: [string, string[]][] = [
  ["node -e '' (baseline)", ["-e", ""]],
  ["paycli --help (bundle)", ["services/cli/paycli.js", "--help"]],
  ["paycli balances, closed port (bundle)", ["services/cli/paycli.js", "balances", "--payment", `127.0.0.1:${closed}`]],
  ["paycli --help (tsx, no build)", ["--import", "tsx", "services/cli/main.ts", "--help"]],
  ["paycli balances, closed port (tsx)", ["--import", "tsx", "services/cli/main.ts", "balances", "--payment", `127.0.0.1:${closed}`]],
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results: [string, number][] = [];
for (const [label, args] of cases) {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    const r = spawnSync(process.execPath, args, { cwd: ROOT, env, stdio: "ignore" });
    times.push(performance.now() - t);
    if (r.status === null) throw new Error(`${label}: killed`);
  }
  results.push([label, median(times)]);
}
const base = results[0]![1];
process.stdout.write(`paycli start time, median of ${RUNS} runs (load average ${(await import("node:os")).loadavg()[0]!.toFixed(2)})\n`);
for (const [label, ms] of results) process.stdout.write(`  ${label.padEnd(42)} ${ms.toFixed(0).padStart(6)} ms   ${(ms / base).toFixed(2)}x baseline\n`);
