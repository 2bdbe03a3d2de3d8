/**
 * Payment throughput on MariaDB/MySQL + Redis.
 *
 *   npx tsx bench/payments.ts
 *
 * Starts the payment and merchant systems on fresh databases and a fresh Redis prefix (as the
 * test harness does), with settlement running on its schedule, then sends COUNT payments at
 * CONCURRENCY:
 *   1. end to end through the merchant's Simulate RPC (merchant stores INIT, calls Pay over
 *      gRPC, stores the answer);
 *   2. straight to the payment system's Pay over gRPC.
 * As a same-run baseline it measures plain INSERTs of equivalent rows into a scratch table on
 * the same server at the same concurrency. It prints figures and checks that every payment was
 * credited once; it never judges the timings.
 *
 * Environment: BENCH_MYSQL_URL (default TEST_MYSQL_URL or mysql://root@127.0.0.1:3306),
 * BENCH_REDIS_URL (default TEST_REDIS_URL or redis://127.0.0.1:6379), BENCH_COUNT (10000),
 * BENCH_CONCURRENCY (64).
 */
import mysql from "mysql2/promise";
import { BusinessClock, idPrefix } from "../services/shared/orders/time.js";
import { measure as measureThroughput, type Throughput } from "./lib/common.js";
import { startPlatform, uniqueName, type Backend, type Platform } from "../test/harness.js";

const mysqlUrl = process.env.BENCH_MYSQL_URL ?? process.env.TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306";
const redisUrl = process.env.BENCH_REDIS_URL ?? process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";
const COUNT = Number(process.env.BENCH_COUNT ?? 10_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const ACCOUNTS = 100;
const WARMUP = 500;

type Figures = Throughput & { label: string };

/** Runs fn(i) for i < count with `concurrency` in flight, labelled for printing. */
async function measure(label: string, count: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<Figures> {
  return { label, ...(await measureThroughput(count, concurrency, fn)) };
}

function print(f: Figures): void {
  console.log(
    `${f.label.padEnd(44)} ${String(f.count).padStart(6)} in ${f.seconds.toFixed(2).padStart(6)} s  ` +
      `${f.perSecond.toFixed(0).padStart(6)} /s  p50 ${f.p50Ms.toFixed(1).padStart(6)} ms  p99 ${f.p99Ms.toFixed(1).padStart(6)} ms`,
  );
}

const clock = new BusinessClock("Asia/Shanghai");
let sequence = 0;
function requestStamp(): { requestTime: string; requestId: string } {
  const requestTime = clock.current();
  sequence = (sequence + 1) % 1_000_000;
  return { requestTime, requestId: idPrefix(requestTime) + String(sequence).padStart(6, "0") };
}

async function throughMerchant(p: Platform, label: string, count: number, seed: bigint): Promise<{ figures: Figures; amount: bigint }> {
  const r = await p.merchantClient.simulate({
    count,
    concurrency: CONCURRENCY,
    accounts: ACCOUNTS,
    accountPrefix: "bench",
    minAmount: 1n,
    maxAmount: 100_000n,
    seed,
  });
  if (r.succeeded !== count) throw new Error(`simulation: ${r.succeeded} of ${count} succeeded, ${r.failed} failed, ${r.unknown} unknown`);
  const seconds = Number(r.elapsedMs) / 1000;
  return {
    figures: { label, count, seconds, perSecond: r.throughput, p50Ms: r.latencyP50Ms, p99Ms: r.latencyP99Ms },
    amount: r.amountSucceeded,
  };
}

async function straightToPayment(p: Platform, label: string, count: number): Promise<{ figures: Figures; amount: bigint }> {
  let amount = 0n;
  const figures = await measure(label, count, CONCURRENCY, async (i) => {
    const totalFee = BigInt(1 + ((i * 7919) % 100_000));
    const r = await p.paymentClient.pay({ ...requestStamp(), salerId: `bench${1 + (i % ACCOUNTS)}`, totalFee });
    if (r.responseCode !== "SUCCESS") throw new Error(`Pay answered ${r.responseCode} ${r.responseMsg}`);
    amount += totalFee;
  });
  return { figures, amount };
}

/** Plain INSERTs of payment-order rows (same columns and indexes) into a scratch table. */
async function baselineInserts(count: number): Promise<Figures> {
  const name = uniqueName("bench_baseline");
  const server = new URL(mysqlUrl);
  server.pathname = "/";
  const admin = await mysql.createConnection(server.toString());
  await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  const url = new URL(mysqlUrl);
  url.pathname = `/${name}`;
  const pool = mysql.createPool({ uri: url.toString(), connectionLimit: CONCURRENCY });
  try {
    await pool.query(`CREATE TABLE scratch_orders (
      id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
      request_id varchar(20) NOT NULL UNIQUE,
      request_time varchar(19) NOT NULL,
      saler_id varchar(64) NOT NULL,
      total_fee bigint NOT NULL,
      response_id varchar(20) NOT NULL UNIQUE,
      response_time varchar(19) NOT NULL,
      response_code varchar(8) NOT NULL,
      response_msg varchar(255) NOT NULL,
      settlement_id bigint NULL,
      KEY by_account (saler_id, settlement_id),
      KEY by_settlement (settlement_id, saler_id)
    ) ENGINE=InnoDB`);
    const insert = (i: number) => {
      const { requestTime, requestId } = requestStamp();
      return pool.execute(
        "INSERT INTO scratch_orders (request_id, request_time, saler_id, total_fee, response_id, response_time, response_code, response_msg) VALUES (?, ?, ?, ?, ?, ?, 'SUCCESS', 'OK')",
        [requestId, requestTime, `bench${1 + (i % ACCOUNTS)}`, 1 + ((i * 7919) % 100_000), `${requestId.slice(0, 14)}${String(i).padStart(6, "0")}`, requestTime],
      );
    };
    for (let i = 0; i < WARMUP; i++) await insert(COUNT + i);
    await pool.query("DELETE FROM scratch_orders");
    return await measure("baseline: plain INSERT into a scratch table", count, CONCURRENCY, async (i) => {
      await insert(i);
    });
  } finally {
    await pool.end();
    await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await admin.end();
  }
}

const backend: Backend = { name: "mariadb+redis", mysqlUrl, redisUrl };
const p = await startPlatform(backend, { payment: { settleCron: "*/5 * * * * *" } });
try {
  console.log(`${COUNT} payments at concurrency ${CONCURRENCY} over ${ACCOUNTS} accounts; MariaDB ${mysqlUrl}, Redis ${redisUrl}`);
  // Warm up connection pools and JIT on both paths; not counted.
  const warm1 = await throughMerchant(p, "warm-up", WARMUP, 1n);
  const warm2 = await straightToPayment(p, "warm-up", WARMUP);

  const merchant = await throughMerchant(p, "end to end: merchant Simulate -> payment Pay", COUNT, 2n);
  const direct = await straightToPayment(p, "payment Pay over gRPC, from this process", COUNT);
  const baseline = await baselineInserts(COUNT);
  print(merchant.figures);
  print(direct.figures);
  print(baseline);
  console.log(`ratio end to end / baseline: ${(merchant.figures.perSecond / baseline.perSecond).toFixed(2)}`);
  console.log(`ratio payment Pay / baseline: ${(direct.figures.perSecond / baseline.perSecond).toFixed(2)}`);

  // Correctness of the run: everything paid is credited exactly once after a final settlement.
  await p.paymentClient.settle({ fullSweep: true });
  const expected = warm1.amount + warm2.amount + merchant.amount + direct.amount;
  let credited = 0n;
  let pending = 0n;
  let pageToken = "";
  do {
    const page = await p.paymentClient.listAccounts({ pageSize: 1000, pageToken });
    for (const a of page.accounts) {
      credited += a.balance;
      pending += a.pending;
    }
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  console.log(`check: paid ${expected} fen, credited ${credited} fen, pending ${pending} fen -> ${credited === expected && pending === 0n ? "OK" : "MISMATCH"}`);
  if (credited !== expected || pending !== 0n) process.exitCode = 1;
} finally {
  await p.close();
}
