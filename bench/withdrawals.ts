/**
 * Withdrawals on one account at concurrency 64.
 *
 *   npx tsx bench/withdrawals.ts
 *
 * One account holds a balance large enough for every withdrawal; this process sends Withdraw
 * RPCs of 1 fen to the payment system (its own process, fresh database) with 64 in flight. Each
 * is recorded with its conditional debit in one transaction, which concurrent withdrawals share.
 * Baseline in the same
 * run: the same conditional UPDATE (`… SET balance = balance - ? WHERE saler_id = ? AND
 * balance >= ?`) sent straight to MariaDB from 64 connections, each statement autocommitted, on
 * a copy of the accounts table. Both must end with the balance lowered by exactly the count.
 *
 * BENCH_WITHDRAWALS (5000).
 */
import mysql from "mysql2/promise";
import { createGrpcClient } from "../services/shared/grpc.js";
import { BusinessClock, idPrefix } from "../services/shared/time.js";
import { PaymentService } from "../gen/payment/v1/payment_pb.js";
import { databaseUrl, emit, envInt, loadAverage, log, measure } from "./lib/common.js";
import { withConnection } from "./lib/orders.js";
import { deploy } from "./lib/services.js";

const COUNT = envInt("BENCH_WITHDRAWALS", 5000);
const CONCURRENCY = 64;
const WARMUP = 500;
const START_BALANCE = 1_000_000_000n;
const ACCOUNT = "hot1";

const started = performance.now();
const loadAtStart = await loadAverage();
const d = await deploy({ merchant: false, paymentEnv: { SETTLE_CRON: "off" }, profileTag: "withdrawals" });
const clock = new BusinessClock("Asia/Shanghai");
let seq = 0;
const stamp = () => {
  const requestTime = clock.current();
  seq = (seq + 1) % 1_000_000;
  return { requestTime, requestId: idPrefix(requestTime) + String(seq).padStart(6, "0") };
};

const balanceOf = (table: string) =>
  withConnection(d.paymentDatabase, async (c) => {
    const [rows] = (await c.query(`SELECT balance FROM ${table} WHERE saler_id = ?`, [ACCOUNT])) as unknown as [{ balance: string }[]];
    return BigInt(rows[0]!.balance);
  });

let ours, baseline;
const checks: string[] = [];
try {
  await withConnection(d.paymentDatabase, async (c) => {
    for (const table of ["accounts", "baseline_accounts"]) {
      if (table !== "accounts") await c.query(`CREATE TABLE ${table} LIKE accounts`);
      await c.query(`INSERT INTO ${table} (saler_id, balance, created_time, updated_time) VALUES (?, ?, '2026-11-26 00:00:00', '2026-11-26 00:00:00')`, [
        ACCOUNT,
        START_BALANCE.toString(),
      ]);
    }
  });
  const client = createGrpcClient(PaymentService, d.payment.grpcAddress);
  const withdraw = async () => {
    const r = await client.client.withdraw({ ...stamp(), salerId: ACCOUNT, withdrawMoney: 1n });
    if (r.responseCode !== "SUCCESS") throw new Error(`Withdraw: ${r.responseMsg}`);
  };
  log(`withdrawals: ${WARMUP} warm-up, ${COUNT} measured, concurrency ${CONCURRENCY}, one account`);
  await measure(WARMUP, CONCURRENCY, withdraw);
  ours = await measure(COUNT, CONCURRENCY, withdraw);
  client.close();
  const left = await balanceOf("accounts");
  checks.push(`Withdraw: balance ${START_BALANCE} − ${COUNT + WARMUP} = ${left}: ${left === START_BALANCE - BigInt(COUNT + WARMUP) ? "OK" : "MISMATCH"}`);
  log(`withdrawals: ${ours.perSecond.toFixed(0)}/s`);

  const pool = mysql.createPool({ uri: databaseUrl(d.paymentDatabase), connectionLimit: CONCURRENCY });
  try {
    const debit = async () => {
      const [r] = (await pool.execute("UPDATE baseline_accounts SET balance = balance - ?, updated_time = ? WHERE saler_id = ? AND balance >= ?", [
        1,
        clock.current(),
        ACCOUNT,
        1,
      ])) as unknown as [{ affectedRows: number }];
      if (r.affectedRows !== 1) throw new Error("baseline debit refused");
    };
    await measure(WARMUP, CONCURRENCY, debit);
    baseline = await measure(COUNT, CONCURRENCY, debit);
  } finally {
    await pool.end();
  }
  const baseLeft = await balanceOf("baseline_accounts");
  checks.push(`baseline: balance ${START_BALANCE} − ${COUNT + WARMUP} = ${baseLeft}: ${baseLeft === START_BALANCE - BigInt(COUNT + WARMUP) ? "OK" : "MISMATCH"}`);
  log(`baseline conditional UPDATE: ${baseline.perSecond.toFixed(0)}/s`);
} finally {
  await d.close();
}

emit({
  name: "withdrawals",
  title: "Withdrawals on one account",
  method:
    `One account with a balance of ${START_BALANCE} fen; ${COUNT} Withdraw RPCs of 1 fen (after ${WARMUP} warm-up) from this process to the payment ` +
    `system (own process, fresh database), ${CONCURRENCY} in flight: each is recorded with its conditional debit in one transaction (concurrent ` +
    "withdrawals share one, with one debit of their total). " +
    `Baseline: the same conditional UPDATE straight on MariaDB from ${CONCURRENCY} pooled connections (mysql2), autocommitted, on a copy of the ` +
    "accounts table in the same database, same count and warm-up.",
  sizes: { withdrawals: COUNT, concurrency: CONCURRENCY, warmup: WARMUP },
  figures: [
    {
      what: "withdrawals/s, one account, concurrency 64",
      ours: ours.perSecond,
      baseline: baseline.perSecond,
      baselineWhat: "the same conditional UPDATE straight on MariaDB, 64 connections",
      unit: "/s",
      better: "higher",
      notes: `p50/p99 ours ${ours.p50Ms.toFixed(1)}/${ours.p99Ms.toFixed(1)} ms, baseline ${baseline.p50Ms.toFixed(1)}/${baseline.p99Ms.toFixed(1)} ms`,
    },
  ],
  loadAverage: loadAtStart,
  seconds: (performance.now() - started) / 1000,
  checks,
});
