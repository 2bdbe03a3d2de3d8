/**
 * What durable commits cost on the embedded default (SQLite, in-process buffer).
 *
 *   npx tsx bench/sqliteDurability.ts
 *
 * Starts the payment and merchant systems on fresh SQLite files under data/bench (on disk, as
 * `npm start` keeps them under data/), then sends BENCH_COUNT payments at BENCH_CONCURRENCY
 * straight to the payment system's Pay over gRPC, and as many end to end through the merchant's
 * Simulate. Each is measured with the product's setting, synchronous=FULL (every commit synced
 * to disk before it is acknowledged), and, as the same-run baseline, with synchronous=NORMAL set
 * on the same connections (WAL syncs only at checkpoints: the last acknowledged payments can be
 * lost on power loss). The two settings alternate over BENCH_ROUNDS rounds and the median of
 * each is printed with the ratio, next to the CPU other processes used meanwhile. It prints
 * figures; it never judges them.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BusinessClock, idPrefix } from "../services/shared/orders/time.js";
import type { Database } from "../services/shared/storage/database.js";
import { DATA_DIR, envInt, measure, type Throughput } from "./lib/common.js";
import { watchOtherLoad } from "./lib/otherLoad.js";
import { startPlatform, type Platform } from "../test/harness.js";

const COUNT = envInt("BENCH_COUNT", 2000);
const CONCURRENCY = envInt("BENCH_CONCURRENCY", 32);
const ROUNDS = envInt("BENCH_ROUNDS", 3);
const ACCOUNTS = 100;

const clock = new BusinessClock("Asia/Shanghai");
let sequence = 0;
function requestStamp(): { requestTime: string; requestId: string } {
  const requestTime = clock.current();
  sequence = (sequence + 1) % 1_000_000;
  return { requestTime, requestId: idPrefix(requestTime) + String(sequence).padStart(6, "0") };
}

/** Sets synchronous on the one connection of each SQLite database and reads it back. */
async function setSynchronous(dbs: Database[], mode: "FULL" | "NORMAL"): Promise<void> {
  for (const db of dbs) {
    await db.knex.raw(`PRAGMA synchronous = ${mode}`);
    const [row] = (await db.knex.raw("PRAGMA synchronous")) as { synchronous: bigint | number }[];
    const expected = mode === "FULL" ? 2 : 1;
    if (Number(row!.synchronous) !== expected) throw new Error(`synchronous is ${row!.synchronous}, expected ${expected}`);
  }
}

async function direct(p: Platform): Promise<Throughput> {
  return measure(COUNT, CONCURRENCY, async (i) => {
    const r = await p.paymentClient.pay({ ...requestStamp(), salerId: `dur${1 + (i % ACCOUNTS)}`, totalFee: BigInt(1 + (i % 1000)) });
    if (r.responseCode !== "SUCCESS") throw new Error(`Pay answered ${r.responseCode} ${r.responseMsg}`);
  });
}

let simulationSeed = 1n;
async function endToEnd(p: Platform): Promise<Throughput> {
  const r = await p.merchantClient.simulate({
    count: COUNT,
    concurrency: CONCURRENCY,
    accounts: ACCOUNTS,
    accountPrefix: "dure2e",
    minAmount: 1n,
    maxAmount: 1000n,
    seed: simulationSeed++,
  });
  if (r.succeeded !== COUNT) throw new Error(`simulation: ${r.succeeded} of ${COUNT} succeeded`);
  return { count: COUNT, seconds: Number(r.elapsedMs) / 1000, perSecond: r.throughput, p50Ms: r.latencyP50Ms, p99Ms: r.latencyP99Ms };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = join(DATA_DIR, `sqlite-durability-${process.pid}`);
mkdirSync(dir, { recursive: true });
process.env.TMPDIR = dir; // the harness puts its SQLite files under the temporary folder
const p = await startPlatform({ name: "embedded" });
const dbs = [p.payment.db, p.merchant.db];
try {
  console.log(`${COUNT} payments per measurement at concurrency ${CONCURRENCY} over ${ACCOUNTS} accounts, ${ROUNDS} rounds; SQLite files under ${dir}`);
  await setSynchronous(dbs, "FULL");
  await direct(p); // warm-up: pools, JIT
  const runs: Record<string, Record<"FULL" | "NORMAL", Throughput[]>> = {
    "payment Pay over gRPC": { FULL: [], NORMAL: [] },
    "end to end: merchant Simulate -> Pay": { FULL: [], NORMAL: [] },
  };
  const others = watchOtherLoad();
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of round % 2 === 0 ? (["FULL", "NORMAL"] as const) : (["NORMAL", "FULL"] as const)) {
      await setSynchronous(dbs, mode);
      runs["payment Pay over gRPC"]![mode].push(await direct(p));
      runs["end to end: merchant Simulate -> Pay"]![mode].push(await endToEnd(p));
    }
  }
  const load = others();
  for (const [what, byMode] of Object.entries(runs)) {
    const full = median(byMode.FULL.map((t) => t.perSecond));
    const normal = median(byMode.NORMAL.map((t) => t.perSecond));
    const p50 = (ts: Throughput[]) => median(ts.map((t) => t.p50Ms)).toFixed(1);
    console.log(
      `${what.padEnd(38)} FULL ${full.toFixed(0).padStart(6)} /s (p50 ${p50(byMode.FULL)} ms)   ` +
        `baseline NORMAL ${normal.toFixed(0).padStart(6)} /s (p50 ${p50(byMode.NORMAL)} ms)   FULL/NORMAL ${(full / normal).toFixed(2)}`,
    );
  }
  console.log(
    `other processes used ${load.cpuSeconds.toFixed(1)} CPU-s over ${load.wallSeconds.toFixed(1)} s ` +
      `(${(load.cpuSeconds / load.wallSeconds).toFixed(2)} of a core${load.top ? `: ${load.top}` : ""})`,
  );
  await setSynchronous(dbs, "FULL");
} finally {
  await p.close();
  rmSync(dir, { recursive: true, force: true });
}
