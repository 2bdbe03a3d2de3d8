/**
 * What every benchmark shares: where MariaDB and Redis are, fresh databases, a concurrency loop
 * with per-call latencies, and the shape of a result that bench/run.ts puts in the report.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import mysql from "mysql2/promise";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const DATA_DIR = join(ROOT, "data", "bench");
export const MYSQL_URL = process.env.BENCH_MYSQL_URL ?? process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306";
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export function envInt(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${v}"`);
  return n;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
}

/** mysql://… of one database on the benchmark server. */
export function databaseUrl(name: string): string {
  const url = new URL(MYSQL_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export function serverUrl(): string {
  const url = new URL(MYSQL_URL);
  url.pathname = "/";
  return url.toString();
}

/** Runs SQL on the server (no database selected). */
export async function adminQuery(sql: string): Promise<unknown> {
  const conn = await mysql.createConnection(serverUrl());
  try {
    const [rows] = await conn.query(sql);
    return rows;
  } finally {
    await conn.end();
  }
}

export async function createDatabase(name: string): Promise<void> {
  await adminQuery(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
}

export async function dropDatabase(name: string): Promise<void> {
  await adminQuery(`DROP DATABASE IF EXISTS \`${name}\``);
}

export function percentile(sorted: ArrayLike<number>, p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

export interface Throughput {
  count: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** Runs fn(i) for every i < count with `concurrency` calls in flight. */
export async function measure(count: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<Throughput> {
  const latencies = new Float64Array(count);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= count) return;
        const t0 = performance.now();
        await fn(i);
        latencies[i] = performance.now() - t0;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort();
  return { count, seconds, perSecond: count / seconds, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };
}

/** One line of the report: our figure next to its same-run baseline. */
export interface Figure {
  /** What is measured, e.g. "payments end to end, 100 accounts". */
  what: string;
  ours: number;
  baseline?: number;
  unit: string;
  /** What the baseline is. */
  baselineWhat?: string;
  /** "higher" when more is better (rates), "lower" for times and memory. */
  better: "higher" | "lower";
  /** Target for ours/baseline (or baseline/ours when lower is better), when the issue sets one. */
  target?: string;
  /** Latency, sizes and anything else worth a column. */
  notes?: string;
}

export interface BenchResult {
  name: string;
  title: string;
  /** How it is measured, for the report's method section. */
  method: string;
  sizes: Record<string, number | string>;
  figures: Figure[];
  /** Load average (1, 5, 15 min) when the benchmark started. */
  loadAverage: number[];
  seconds: number;
  /** Checks of the run's own correctness (e.g. every payment credited once). */
  checks?: string[];
}

/** A figure's ratio as the report shows it: ours/baseline for rates, baseline/ours for costs. */
export function ratioOf(f: Figure): number | undefined {
  if (f.baseline === undefined || f.baseline === 0 || f.ours === 0) return undefined;
  return f.better === "higher" ? f.ours / f.baseline : f.baseline / f.ours;
}

/** Writes the result where bench/run.ts asked (BENCH_RESULT_FILE) and prints its figures. */
export function emit(result: BenchResult): void {
  const file = process.env.BENCH_RESULT_FILE;
  if (file) {
    mkdirSync(join(file, ".."), { recursive: true });
    writeFileSync(file, JSON.stringify(result, null, 2));
  }
  console.log(`\n${result.title} (${result.seconds.toFixed(1)} s)`);
  for (const f of result.figures) {
    const r = ratioOf(f);
    console.log(
      `  ${f.what}: ${fmt(f.ours)} ${f.unit}` +
        (f.baseline === undefined ? "" : ` | baseline ${fmt(f.baseline)} ${f.unit}${r === undefined ? "" : ` | ratio ${r.toFixed(2)}`}`) +
        (f.notes ? ` | ${f.notes}` : ""),
    );
  }
  for (const c of result.checks ?? []) console.log(`  check: ${c}`);
}

export function fmt(n: number): string {
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString("en");
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

export async function loadAverage(): Promise<number[]> {
  const { loadavg } = await import("node:os");
  return loadavg().map((v) => Math.round(v * 100) / 100);
}

export function log(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
