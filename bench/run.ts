/**
 * Runs every benchmark, each in a process of its own, and writes bench/REPORT.md from their
 * results (bench/results/<name>.json).
 *
 *   npm run bench                      # all of them
 *   npm run bench -- rpc withdrawals   # only these (BENCH_ONLY=rpc,withdrawals likewise)
 *
 * Installs the baselines first when they are missing (bench/install-baselines.sh). Benchmarks
 * print figures next to their same-run baselines; none passes or fails on time. A benchmark
 * that breaks is reported as such and the others still run.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { REDIS_URL, ROOT, adminQuery, fmt, log, ratioOf, type BenchResult } from "./lib/common.js";
import { PROFILE_DIR } from "./lib/services.js";
import { summarize } from "./profileSummary.js";
import { watchOtherLoad } from "./lib/otherLoad.js";

const BENCHMARKS: { name: string; script: string; args?: string[] }[] = [
  { name: "payments", script: "paymentsEndToEnd.ts" },
  { name: "rpc", script: "rpcOverhead.ts" },
  { name: "settlement", script: "settlement.ts" },
  { name: "withdrawals", script: "withdrawals.ts" },
  { name: "export", script: "exportOrders.ts" },
  { name: "reconcile", script: "reconcileVersus.ts" },
];

const named = [...process.argv.slice(2), ...(process.env.BENCH_ONLY?.split(",") ?? [])].map((s) => s.trim()).filter((s) => s !== "");
const unknown = named.filter((n) => !BENCHMARKS.some((b) => b.name === n));
if (unknown.length > 0) {
  console.error(`unknown benchmark(s): ${unknown.join(", ")}; the benchmarks are ${BENCHMARKS.map((b) => b.name).join(", ")}`);
  process.exit(2);
}
const selected = BENCHMARKS.filter((b) => named.length === 0 || named.includes(b.name));

function sh(command: string): string {
  const r = spawnSync("bash", ["-c", command], { encoding: "utf8" });
  return (r.stdout ?? "").trim();
}

async function machineFacts(): Promise<[string, string][]> {
  const version = (await adminQuery("SELECT VERSION() AS v")) as { v: string }[];
  const vars = (await adminQuery(
    "SHOW VARIABLES WHERE Variable_name IN ('innodb_flush_log_at_trx_commit', 'innodb_buffer_pool_size', 'log_bin', 'max_connections')",
  )) as { Variable_name: string; Value: string }[];
  const v = Object.fromEntries(vars.map((r) => [r.Variable_name, r.Value]));
  const redis = new Redis(REDIS_URL);
  const info = await redis.info("server");
  redis.disconnect();
  const duckdb = JSON.parse(readFileSync(join(ROOT, "node_modules", "@duckdb", "node-api", "package.json"), "utf8")) as { version: string };
  return [
    ["load average before the run", `${loadavg().map((l) => l.toFixed(2)).join(", ")} (1, 5, 15 min); each benchmark's own load is in its method section, and includes the suite's previous benchmark`],
    ["CPU", `${sh("nproc")} cores (nproc), ${cpus()[0]?.model ?? "?"}`],
    ["memory", `${(totalmem() / 2 ** 30).toFixed(1)} GiB`],
    ["kernel", sh("uname -sr")],
    ["Node.js", process.version],
    ["MariaDB", `${version[0]!.v} (innodb_flush_log_at_trx_commit=${v.innodb_flush_log_at_trx_commit}, buffer pool ${Math.round(Number(v.innodb_buffer_pool_size) / 2 ** 20)} MiB, binlog ${v.log_bin}, max_connections ${v.max_connections})`],
    ["Redis", /redis_version:(\S+)/.exec(info)?.[1] ?? "?"],
    ["sysbench", sh("sysbench --version")],
    ["Miller", sh("mlr --version")],
    ["DuckDB", `@duckdb/node-api ${duckdb.version}`],
    ["git", sh(`git -C ${ROOT} log -1 --format='%h %s'`) + (sh(`git -C ${ROOT} status --porcelain --untracked-files=no -- services`) ? " (with uncommitted changes under services/)" : "")],
  ];
}

function runBenchmark(script: string, resultFile: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bench", script), ...args], {
      cwd: ROOT,
      stdio: "inherit",
      env: { ...process.env, BENCH_RESULT_FILE: resultFile },
    });
    child.on("exit", (code) => resolve(code ?? 1));
  });
}

function cell(n: number | undefined, unit: string): string {
  return n === undefined ? "—" : `${fmt(n)} ${unit}`;
}

function report(facts: [string, string][], results: BenchResult[], failed: string[], started: Date, seconds: number, earlier: Map<string, Date>): string {
  const out: string[] = [];
  const utc = (d: Date) => `${d.toISOString().replace("T", " ").slice(0, 19)} UTC`;
  out.push("# Benchmark report", "");
  out.push(
    `Written by \`npm run bench\` (bench/run.ts) on ${utc(started)} in ${(seconds / 60).toFixed(1)} min. ` +
      "Every figure sits next to a baseline measured in the same run on the same machine; a ratio above 1 means ours is better " +
      "(ours/baseline for rates, baseline/ours for times and memory). Benchmarks print figures; none passes or fails on time.",
    "",
  );
  if (earlier.size > 0) {
    out.push(
      `Only ${selected.map((b) => b.name).join(", ")} ran this time (\`npm run bench -- <name…>\`); ` +
        `${[...earlier].map(([name, at]) => `${name} is from ${utc(at)}`).join(", ")}, on the same machine, whose facts below are this run's.`,
      "",
    );
  }
  out.push("## Machine", "", "| | |", "|---|---|");
  for (const [k, v] of facts) out.push(`| ${k} | ${v} |`);
  out.push("");
  out.push("## Results", "");
  out.push("| benchmark | figure | ours | baseline (same run) | ratio | target | notes |", "|---|---|---|---|---|---|---|");
  for (const r of results) {
    const other = otherLoad.get(r.name);
    const busy = other && other.wallSeconds > 0 ? other.cpuSeconds / other.wallSeconds : 0;
    for (const f of r.figures) {
      const ratio = ratioOf(f);
      out.push(
        `| ${r.name} | ${f.what} | ${cell(f.ours, f.unit)} | ${f.baseline === undefined ? "—" : `${cell(f.baseline, f.unit)}: ${f.baselineWhat ?? ""}`} | ` +
          `${ratio === undefined ? "—" : ratio.toFixed(2)} | ${f.target ?? ""} | ${f.notes ?? ""}${busy > 0.1 ? ` **Other processes kept ${busy.toFixed(1)} of 2 cores busy during this benchmark.**` : ""} |`,
      );
    }
  }
  for (const name of failed) out.push(`| ${name} | **failed to run**: see the console output | | | | | |`);
  out.push("");
  out.push("## Method", "");
  for (const r of results) {
    out.push(`### ${r.title}`, "");
    out.push(r.method, "");
    const other = otherLoad.get(r.name);
    out.push(`Sizes: ${Object.entries(r.sizes).map(([k, v]) => `${k} ${typeof v === "number" ? v.toLocaleString("en") : v}`).join(", ")}. ` +
      `Load average when it started: ${r.loadAverage.join(", ")} (1, 5, 15 min). Took ${r.seconds.toFixed(0)} s.` +
      (other ? ` Processes other than the benchmark's own (and MariaDB and Redis) used ${other.cpuSeconds.toFixed(1)} CPU-seconds meanwhile${other.top ? ` (${other.top})` : ""}.` : ""), "");
    if (r.checks?.length) {
      out.push("Checks:", "");
      for (const c of r.checks) out.push(`- ${c}`);
      out.push("");
    }
  }
  // What the profiles showed for the figures short of their targets, and what was tried: kept
  // by hand in bench/analysis.md and carried into every report.
  const analysis = join(ROOT, "bench", "analysis.md");
  if (existsSync(analysis)) out.push(readFileSync(analysis, "utf8").trimEnd(), "");
  if (process.env.BENCH_PROFILE === "1" && existsSync(PROFILE_DIR)) {
    out.push("## CPU profiles", "", "Taken with `node --cpu-prof` (BENCH_PROFILE=1), which slows the processes down: the figures above are then not comparable with a run without it. Top self time of each process's main thread, idle excluded:", "");
    for (const dir of readdirSync(PROFILE_DIR).sort()) {
      const files = readdirSync(join(PROFILE_DIR, dir)).map((f) => join(PROFILE_DIR, dir, f));
      if (files.length === 0) continue;
      const main = files.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
      const s = summarize(main, 8);
      out.push(`### ${dir} (busy ${(s.totalMs / 1000).toFixed(1)} s)`, "");
      out.push(`By package: ${s.owners.map((o) => `${o.frame} ${o.percent.toFixed(1)}%`).join(", ")}.`, "");
      out.push(`By frame: ${s.frames.map((o) => `\`${o.frame}\` ${o.percent.toFixed(1)}%`).join(", ")}.`, "");
    }
  }
  return out.join("\n");
}

const started = new Date();
const t0 = performance.now();
log("installing missing baselines (bench/install-baselines.sh)");
const install = spawnSync("bash", [join(ROOT, "bench", "install-baselines.sh")], { stdio: "inherit" });
if (install.status !== 0) throw new Error("bench/install-baselines.sh failed");

const facts = await machineFacts();
for (const [k, v] of facts) log(`${k}: ${v}`);
// Each benchmark's latest result, kept beside the report (and committed with it): a run of some
// benchmarks keeps the others', so the report still shows them all.
const resultsDir = join(ROOT, "bench", "results");
if (named.length === 0) rmSync(resultsDir, { recursive: true, force: true });
else for (const b of selected) rmSync(join(resultsDir, `${b.name}.json`), { force: true });
if (process.env.BENCH_PROFILE === "1") rmSync(PROFILE_DIR, { recursive: true, force: true });
mkdirSync(resultsDir, { recursive: true });
const results: BenchResult[] = [];
const failed: string[] = [];
const otherLoad = new Map<string, ReturnType<ReturnType<typeof watchOtherLoad>>>();
for (const b of selected) {
  log(`== ${b.name} (bench/${b.script}); load average ${loadavg().map((l) => l.toFixed(2)).join(", ")}`);
  const file = join(resultsDir, `${b.name}.json`);
  const others = watchOtherLoad();
  const code = await runBenchmark(b.script, file, b.args ?? []);
  const other = others();
  otherLoad.set(b.name, other);
  log(`${b.name}: other processes used ${other.cpuSeconds.toFixed(1)} CPU-s in ${other.wallSeconds.toFixed(0)} s${other.top ? ` (${other.top})` : ""}`);
  if (existsSync(file)) results.push(JSON.parse(readFileSync(file, "utf8")) as BenchResult);
  if (code !== 0 || !existsSync(file)) {
    failed.push(b.name);
    log(`${b.name} exited ${code}`);
  }
}
const seconds = (performance.now() - t0) / 1000;
const earlier = new Map<string, Date>();
for (const b of BENCHMARKS) {
  const file = join(resultsDir, `${b.name}.json`);
  if (selected.includes(b) || !existsSync(file)) continue;
  results.push(JSON.parse(readFileSync(file, "utf8")) as BenchResult);
  earlier.set(b.name, statSync(file).mtime);
}
results.sort((a, b) => BENCHMARKS.findIndex((x) => x.name === a.name) - BENCHMARKS.findIndex((x) => x.name === b.name));
const text = report(facts, results, failed, started, seconds, earlier);
const reportPath = join(ROOT, "bench", "REPORT.md");
writeFileSync(reportPath, text + "\n");
log(`wrote ${reportPath} after ${(seconds / 60).toFixed(1)} min`);
if (failed.length > 0) process.exitCode = 1;
