/**
 * Reconciliation of N vs N orders against the tools a user would pick instead.
 *
 *   npx tsx bench/reconcileVersus.ts 1000000 4000000
 *
 * The order files come from bench/reconcileFiles.ts orderFiles() (sorted by response_id, and the
 * same orders shuffled; 1 in 1000 orders only on one side or with another amount). Each contender
 * runs in a process of its own, so its peak RSS is its own, and must find exactly the planted
 * differences:
 *   ours   — the reconciliation service's ReconcileFiles RPC (bench/reconcileFilesChild.ts);
 *   DuckDB — a FULL OUTER JOIN of the same files giving each order its diff type, written as CSV
 *            (bench/duckdbReconcileChild.ts);
 *   Miller — `mlr --icsv --ocsv join --ul --ur -j response_id` with a `put` giving the diff type
 *            (the merchant file's amount column renamed on the way in, so the side of an unpaired
 *            record shows), under /usr/bin/time -v for its peak RSS. The plain join holds the whole
 *            left file in memory, so by default it runs at the smallest size only; the sorted-input
 *            join (`-s`, streaming) runs on the sorted files at every size.
 *
 * Sizes: arguments, else BENCH_RECON_SIZES ("1000000,4000000").
 */
import { spawn } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { DATA_DIR, ROOT, emit, loadAverage, log, type Figure } from "./lib/common.js";
import { orderFiles, runChild, type Expected } from "./reconcileFiles.js";
import { bufferPoolOf } from "../services/recon/engine.js";

const sizes = (process.argv.slice(2).length > 0 ? process.argv.slice(2) : (process.env.BENCH_RECON_SIZES ?? "1000000,4000000").split(",")).map(Number);
const outDir = join(DATA_DIR, "reconcile-versus");

interface Outcome {
  ms: number;
  peakRssMb: number;
  counts: Expected;
}

function sameCounts(a: Expected, b: Expected): boolean {
  return a.f000 === b.f000 && a.f113 === b.f113 && a.f114 === b.f114 && a.f115 === b.f115;
}

function capture(command: string, args: string[], env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, LOG_LEVEL: "silent", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(new Error(`${command} exited ${code}: ${stderr.slice(-2000)}`))));
  });
}

const MEMORY_LIMIT_MB = 512; // the service's default RECON_MEMORY_LIMIT
const SAME_POOL = "duckdb ordered, same pool";

async function ours(merchant: string, payment: string): Promise<Outcome> {
  const r = await runChild(merchant, payment);
  return { ms: r.ms!, peakRssMb: r.peakRssMb!, counts: { f000: r.f000!, f113: r.f113!, f114: r.f114!, f115: r.f115! } };
}

let duckdbVersion = "";
/** DuckDB in a child process; `memoryLimit` sets its memory_limit (its default otherwise). */
async function duckdb(merchant: string, payment: string, n: number, ordered = false, memoryLimit?: string): Promise<Outcome> {
  const out = join(outDir, `duckdb_diff_${n}.csv`);
  const { stdout } = await capture(
    process.execPath,
    ["--import", "tsx", join(ROOT, "bench", "duckdbReconcileChild.ts"), merchant, payment, out, ...(ordered ? ["ordered"] : [])],
    memoryLimit ? { DUCKDB_MEMORY_LIMIT: memoryLimit } : {},
  );
  rmSync(out, { force: true });
  const r = JSON.parse(stdout) as Record<string, number | string>;
  duckdbVersion = `${r.version}, ${r.threads} threads`;
  return { ms: r.ms as number, peakRssMb: r.peakRssMb as number, counts: { f000: r.f000 as number, f113: r.f113 as number, f114: r.f114 as number, f115: r.f115 as number } };
}

const DIFF_TYPE =
  'if (is_absent($merchant_amount)) { $diff_type = "F113" } elif (is_absent($total_fee)) { $diff_type = "F114" } ' +
  'elif ($merchant_amount == $total_fee) { $diff_type = "F000" } else { $diff_type = "F115" }';

async function miller(merchant: string, payment: string, n: number, sorted: boolean): Promise<Outcome> {
  const out = join(outDir, `miller_diff_${n}.csv`);
  const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const script =
    `mlr --icsv --ocsv join ${sorted ? "-s " : ""}--ul --ur -j response_id -f <(sed '1s/total_fee/merchant_amount/' ${q(merchant)}) ` +
    `then put ${q(DIFF_TYPE)} ${q(payment)} > ${q(out)}`;
  const t0 = performance.now();
  const { stderr } = await capture("/usr/bin/time", ["-v", "bash", "-c", script]);
  const ms = performance.now() - t0;
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
  const { stdout } = await capture("bash", ["-c", `for t in F000 F113 F114 F115; do grep -c ",$t$" ${q(out)} || true; done`]);
  rmSync(out, { force: true });
  const [f000, f113, f114, f115] = stdout.trim().split("\n").map(Number) as [number, number, number, number];
  return { ms, peakRssMb: Math.round(Number(rss?.[1] ?? 0) / 1024), counts: { f000, f113, f114, f115 } };
}

const started = performance.now();
const loadAtStart = await loadAverage();
mkdirSync(outDir, { recursive: true });
const figures: Figure[] = [];
const checks: string[] = [];
// Miller is installed by bench/install-baselines.sh (npm run bench); run alone without it, it is left out.
const millerVersion = await capture("mlr", ["--version"]).then((r) => r.stdout.trim(), () => "");
if (!millerVersion) checks.push("Miller is not installed: its figures are left out (bench/install-baselines.sh installs it)");
const smallest = Math.min(...sizes);
const peaks: Record<string, number[]> = { ours: [], duckdb: [] };
for (const n of sizes) {
  for (const sorted of [true, false]) {
    const input = sorted ? "sorted" : "unsorted";
    log(`reconcile ${n} vs ${n} ${input}: files`);
    const { merchant, payment, expected } = await orderFiles(n, sorted);
    const runs: [string, () => Promise<Outcome>][] = [
      ["ours", () => ours(merchant, payment)],
      ["duckdb", () => duckdb(merchant, payment, n)],
      ["duckdb ordered", () => duckdb(merchant, payment, n, true)],
      [SAME_POOL, () => duckdb(merchant, payment, n, true, bufferPoolOf(`${MEMORY_LIMIT_MB}MB`))],
    ];
    if (sorted && millerVersion) runs.push(["miller -s", () => miller(merchant, payment, n, true)]);
    if (sorted && millerVersion && (n === smallest || process.env.BENCH_MILLER_UNSORTED_ALL === "1")) runs.push(["miller", () => miller(merchant, payment, n, false)]);
    const got: Record<string, Outcome> = {};
    for (const [name, run] of runs) {
      let o: Outcome;
      try {
        o = await run();
      } catch (err) {
        // DuckDB may not complete the ordered join within the service's pool: that is a finding.
        const oom = /Out of Memory Error[^\n\]]*/.exec((err as Error).message);
        if (name !== SAME_POOL || !oom) throw err;
        log(`reconcile ${n} ${input}: ${name} did not complete: ${oom[0]}`);
        checks.push(`${n.toLocaleString("en")} ${input} ${name}: DuckDB did not complete within memory_limit ${bufferPoolOf(`${MEMORY_LIMIT_MB}MB`)} (${oom[0]})`);
        continue;
      }
      log(`reconcile ${n} ${input}: ${name} ${(o.ms / 1000).toFixed(2)} s, peak ${o.peakRssMb} MB`);
      checks.push(`${n.toLocaleString("en")} ${input} ${name}: ${o.counts.f000}/${o.counts.f113}/${o.counts.f114}/${o.counts.f115} ${sameCounts(o.counts, expected) ? "as planted" : "DIFFERS from the planted differences"}`);
      if (!sameCounts(o.counts, expected)) process.exitCode = 1;
      got[name] = o;
    }
    const o = got.ours!;
    const d = got.duckdb!;
    const dOrdered = got["duckdb ordered"]!;
    const dPool = got[SAME_POOL];
    peaks.ours!.push(o.peakRssMb);
    peaks.duckdb!.push(d.peakRssMb);
    checks.push(
      `${n.toLocaleString("en")} ${input}: the service's peak RSS ${o.peakRssMb} MB is ${o.peakRssMb <= MEMORY_LIMIT_MB + 200 ? "within" : "ABOVE"} RECON_MEMORY_LIMIT (${MEMORY_LIMIT_MB} MB) + 200 MB`,
    );
    const rows = 2 * n;
    const size = `${(n / 1e6).toLocaleString("en")}M vs ${(n / 1e6).toLocaleString("en")}M ${input}`;
    figures.push(
      { what: `reconciliation ${size}: time`, ours: o.ms / 1000, baseline: d.ms / 1000, baselineWhat: "DuckDB FULL OUTER JOIN", unit: "s", better: "lower", target: "≥ 0.9", notes: `ours ${Math.round(rows / (o.ms / 1000)).toLocaleString("en")} rows/s, DuckDB ${Math.round(rows / (d.ms / 1000)).toLocaleString("en")} rows/s` },
      {
        what: `reconciliation ${size}: time vs DuckDB in the seed's order`,
        ours: o.ms / 1000,
        baseline: dOrdered.ms / 1000,
        baselineWhat: "DuckDB FULL OUTER JOIN … ORDER BY",
        unit: "s",
        better: "lower",
        notes: `the same join written in the service's row order, unchecked; DuckDB peak ${dOrdered.peakRssMb} MB`,
      },
    );
    if (dPool) {
      figures.push({
        what: `reconciliation ${size}: time vs DuckDB in the seed's order with the service's buffer pool`,
        ours: o.ms / 1000,
        baseline: dPool.ms / 1000,
        baselineWhat: `DuckDB FULL OUTER JOIN … ORDER BY, memory_limit ${bufferPoolOf(`${MEMORY_LIMIT_MB}MB`)}`,
        unit: "s",
        better: "lower",
        notes: `what the service adds to DuckDB doing the same join in the same order within the same memory: its checks, totals and run files; DuckDB peak ${dPool.peakRssMb} MB`,
      });
    }
    figures.push(
      { what: `reconciliation ${size}: peak RSS`, ours: o.peakRssMb, baseline: d.peakRssMb, baselineWhat: "DuckDB", unit: "MB", better: "lower", notes: `service limit: RECON_MEMORY_LIMIT ${MEMORY_LIMIT_MB} MB + 200 MB` },
    );
    for (const m of ["miller -s", "miller"]) {
      const r = got[m];
      if (!r) continue;
      figures.push(
        { what: `reconciliation ${size}: time vs \`mlr join${m === "miller -s" ? " -s" : ""}\``, ours: o.ms / 1000, baseline: r.ms / 1000, baselineWhat: `Miller join${m === "miller -s" ? " -s (sorted input)" : ""}`, unit: "s", better: "lower" },
        { what: `reconciliation ${size}: peak RSS vs \`mlr join${m === "miller -s" ? " -s" : ""}\``, ours: o.peakRssMb, baseline: r.peakRssMb, baselineWhat: `Miller join${m === "miller -s" ? " -s" : ""}`, unit: "MB", better: "lower" },
      );
    }
  }
}
rmSync(outDir, { recursive: true, force: true });
if (sizes.length > 1) {
  checks.push(`peak RSS per run as orders grow (sorted, unsorted per size) ${sizes.map((n) => n.toLocaleString("en")).join(" → ")}: ours ${peaks.ours!.join(" → ")} MB, DuckDB ${peaks.duckdb!.join(" → ")} MB`);
}

emit({
  name: "reconcile",
  title: "Reconciliation of order files",
  method:
    "Order files from bench/reconcileFiles.ts orderFiles() (CSV sorted by response_id, and the same orders shuffled; 1 in 1000 orders only on the " +
    "payment side, 1 in 1000 only on the merchant side, 1 in 1000 with another amount). Ours: the reconciliation service (its own process, default " +
    "RECON_MEMORY_LIMIT 512MB, of which DuckDB's buffer pool gets 60 %, and RECON_THREADS) answering ReconcileFiles for the two paths: each file " +
    "copied into the run with its byte checks (line length, UTF-8), one FULL OUTER JOIN of both files sorted into the seed's order (payment side in " +
    "key order, then the merchant-only orders) into a temporary table, one scan of it checking every row and key and summing every diff type, then " +
    "COPY of the table to the diff file; time is the RPC's, peak RSS the process's maxRSS (the " +
    `whole service). DuckDB (${duckdbVersion}) alone: FULL OUTER JOIN on response_id with the diff type as a CASE, COPY … TO a CSV file, unordered and ` +
    "unchecked, in its own Node process (maxRSS read before an untimed count check); and the same with ORDER BY into the seed's order (the cost " +
    "of the order alone), once with DuckDB's default memory and once with the service's buffer pool as its memory_limit (the same join in the " +
    "same order within the same memory: the service's remaining work is its checks, its totals and keeping the run's files). Miller " +
    `(${millerVersion}): join --ul --ur plus a put for the diff type, output to a file, timed with /usr/bin/time -v; the plain join loads the ` +
    "left file into memory, the -s variant streams sorted input. Every contender's counts per diff type are checked against the planted ones.",
  sizes: { ordersPerSide: sizes.join(", ") },
  figures,
  loadAverage: loadAtStart,
  seconds: (performance.now() - started) / 1000,
  checks,
});
