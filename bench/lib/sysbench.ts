/** `sysbench oltp_insert` on a fresh database of the benchmark's MariaDB. */
import { spawn } from "node:child_process";
import { MYSQL_URL, createDatabase, dropDatabase, uniqueName } from "./common.js";

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("sysbench", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`sysbench ${args[1]} exited ${code}: ${err || out}`))));
  });
}

export interface SysbenchInsert {
  threads: number;
  seconds: number;
  insertsPerSecond: number;
  p50Ms: number | undefined;
  p99Ms: number;
  version: string;
}

/** Inserts per second with `threads` connections for `seconds`, one autocommitted INSERT each. */
export async function sysbenchOltpInsert(threads: number, seconds: number): Promise<SysbenchInsert> {
  const url = new URL(MYSQL_URL);
  const db = uniqueName("bench_sysbench");
  await createDatabase(db);
  const common = [
    "oltp_insert",
    "--db-driver=mysql",
    `--mysql-host=${url.hostname}`,
    `--mysql-port=${url.port || "3306"}`,
    `--mysql-user=${decodeURIComponent(url.username || "root")}`,
    ...(url.password ? [`--mysql-password=${decodeURIComponent(url.password)}`] : []),
    `--mysql-db=${db}`,
    "--tables=1",
    "--table-size=10000",
  ];
  try {
    await run([...common, "prepare"]);
    const out = await run([...common, `--threads=${threads}`, `--time=${seconds}`, "--percentile=99", "--histogram=on", "--report-interval=0", "run"]);
    const tps = /transactions:\s+\d+\s+\(([\d.]+) per sec/.exec(out);
    const p99 = /99th percentile:\s+([\d.]+)/.exec(out);
    const version = /sysbench ([\d.]+)/.exec(out)?.[1] ?? "?";
    if (!tps || !p99) throw new Error(`unexpected sysbench output:\n${out}`);
    return { threads, seconds, insertsPerSecond: Number(tps[1]), p50Ms: histogramMedian(out), p99Ms: Number(p99[1]), version };
  } finally {
    await dropDatabase(db);
  }
}

/** The median latency from sysbench's --histogram output (value  |***  count lines). */
function histogramMedian(out: string): number | undefined {
  const rows: [number, number][] = [];
  for (const line of out.split("\n")) {
    const m = /^\s+([\d.]+)\s+\|\**\s+(\d+)\s*$/.exec(line);
    if (m) rows.push([Number(m[1]), Number(m[2])]);
  }
  const total = rows.reduce((s, [, n]) => s + n, 0);
  let seen = 0;
  for (const [value, n] of rows) {
    seen += n;
    if (seen * 2 >= total) return value;
  }
  return undefined;
}
