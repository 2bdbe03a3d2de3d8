/**
 * Withdrawals on one account, and refunds of one payment, at concurrency 64.
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
 * Refunds: one settled payment of 10^9 fen to another account, refunded 1 fen at a time with 64
 * in flight: each Refund is recorded in one transaction (the refund order, the payment's
 * conditional `refunded` raise, the account's conditional debit), which concurrent refunds share
 * (one INSERT of their orders, one raise and one debit of their total), all of them on the same
 * two rows. Baseline
 * in the same run: those three statements in one transaction straight on MariaDB from 64
 * connections, on copies of the tables. Both must end with the payment's `refunded` equal to the
 * count and the balance lowered by it.
 *
 * BENCH_WITHDRAWALS (20000), BENCH_REFUNDS (5000), each after a warm-up of 2000. Shorter runs
 * measure the payment process while V8 is still compiling its hot paths: 5000 withdrawals after a
 * warm-up of 500 read 0.38 of the baseline where 20000 after 2000 read 0.52–0.53, on one machine.
 */
import mysql from "mysql2/promise";
import { createGrpcClient } from "../services/shared/rpc/grpcClient.js";
import { BusinessClock, idPrefix } from "../services/shared/orders/time.js";
import { PaymentService } from "../gen/payment/v1/payment_pb.js";
import { databaseUrl, emit, envInt, loadAverage, log, measure } from "./lib/common.js";
import { withConnection } from "./lib/orders.js";
import { deploy } from "./lib/services.js";

const COUNT = envInt("BENCH_WITHDRAWALS", 20_000);
const REFUNDS = envInt("BENCH_REFUNDS", 5000);
const REFUND_ACCOUNT = "hot2";
const REFUNDED_PAYMENT = 1_000_000_000n;
const CONCURRENCY = 64;
const WARMUP = 2000;
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

const balanceOf = (table: string, account = ACCOUNT) =>
  withConnection(d.paymentDatabase, async (c) => {
    const [rows] = (await c.query(`SELECT balance FROM ${table} WHERE saler_id = ?`, [account])) as unknown as [{ balance: string }[]];
    return BigInt(rows[0]!.balance);
  });
const refundedOf = (table: string, responseId: string) =>
  withConnection(d.paymentDatabase, async (c) => {
    const [rows] = (await c.query(`SELECT refunded FROM ${table} WHERE response_id = ?`, [responseId])) as unknown as [{ refunded: string }[]];
    return BigInt(rows[0]!.refunded);
  });

let ours, baseline, oursRefunds, baselineRefunds;
let cpuPerWithdrawal = 0;
let cpuPerRefund = 0;
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
  const cpuBefore = await d.payment.cpuSeconds();
  ours = await measure(COUNT, CONCURRENCY, withdraw);
  cpuPerWithdrawal = ((await d.payment.cpuSeconds()) - cpuBefore) / COUNT;
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

  // Refunds of one settled payment.
  const refundClient = createGrpcClient(PaymentService, d.payment.grpcAddress);
  const paid = await refundClient.client.pay({ ...stamp(), salerId: REFUND_ACCOUNT, totalFee: REFUNDED_PAYMENT });
  if (paid.responseCode !== "SUCCESS") throw new Error(`Pay: ${paid.responseMsg}`);
  await refundClient.client.settle({});
  const refundStart = await balanceOf("accounts", REFUND_ACCOUNT);
  const refund = async () => {
    const r = await refundClient.client.refund({ ...stamp(), salerId: REFUND_ACCOUNT, paymentResponseId: paid.responseId, refundFee: 1n });
    if (r.responseCode !== "SUCCESS") throw new Error(`Refund: ${r.responseMsg}`);
  };
  log(`refunds: ${WARMUP} warm-up, ${REFUNDS} measured, concurrency ${CONCURRENCY}, one payment`);
  await measure(WARMUP, CONCURRENCY, refund);
  const refundCpuBefore = await d.payment.cpuSeconds();
  oursRefunds = await measure(REFUNDS, CONCURRENCY, refund);
  cpuPerRefund = ((await d.payment.cpuSeconds()) - refundCpuBefore) / REFUNDS;
  refundClient.close();
  const refunded = await refundedOf("payment_orders", paid.responseId);
  const refundLeft = await balanceOf("accounts", REFUND_ACCOUNT);
  const refundCount = BigInt(REFUNDS + WARMUP);
  checks.push(
    `Refund: refunded ${refunded} of ${refundCount}, balance ${refundStart} − ${refundCount} = ${refundLeft}: ${refunded === refundCount && refundLeft === refundStart - refundCount ? "OK" : "MISMATCH"}`,
  );
  log(`refunds: ${oursRefunds.perSecond.toFixed(0)}/s`);

  await withConnection(d.paymentDatabase, async (c) => {
    await c.query("CREATE TABLE baseline_refund_orders LIKE refund_orders");
    await c.query("CREATE TABLE baseline_payment_orders LIKE payment_orders");
    await c.query("INSERT INTO baseline_payment_orders SELECT * FROM payment_orders WHERE response_id = ?", [paid.responseId]);
    await c.query("UPDATE baseline_payment_orders SET refunded = 0");
    await c.query(`INSERT INTO baseline_accounts (saler_id, balance, created_time, updated_time) VALUES (?, ?, '2026-11-26 00:00:00', '2026-11-26 00:00:00')`, [
      REFUND_ACCOUNT,
      refundStart.toString(),
    ]);
  });
  const refundPool = mysql.createPool({ uri: databaseUrl(d.paymentDatabase), connectionLimit: CONCURRENCY });
  let baselineSeq = 0;
  try {
    const directRefund = async () => {
      const c = await refundPool.getConnection();
      try {
        const now = clock.current();
        const n = String(baselineSeq++).padStart(6, "0");
        await c.beginTransaction();
        await c.execute(
          "INSERT INTO baseline_refund_orders (request_id, request_time, saler_id, payment_response_id, refund_fee, response_id, response_time, response_code, response_msg) VALUES (?, ?, ?, ?, ?, ?, ?, 'SUCCESS', 'success')",
          [idPrefix(now) + n, now, REFUND_ACCOUNT, paid.responseId, 1, idPrefix(now) + n.replace(/^./, "9"), now],
        );
        const [fit] = (await c.execute("UPDATE baseline_payment_orders SET refunded = refunded + ? WHERE response_id = ? AND saler_id = ? AND total_fee - refunded >= ?", [
          1,
          paid.responseId,
          REFUND_ACCOUNT,
          1,
        ])) as unknown as [{ affectedRows: number }];
        const [debited] = (await c.execute("UPDATE baseline_accounts SET balance = balance - ?, updated_time = ? WHERE saler_id = ? AND balance >= ?", [
          1,
          now,
          REFUND_ACCOUNT,
          1,
        ])) as unknown as [{ affectedRows: number }];
        if (fit.affectedRows !== 1 || debited.affectedRows !== 1) throw new Error("baseline refund refused");
        await c.commit();
      } catch (err) {
        await c.rollback();
        throw err;
      } finally {
        c.release();
      }
    };
    await measure(WARMUP, CONCURRENCY, directRefund);
    baselineRefunds = await measure(REFUNDS, CONCURRENCY, directRefund);
  } finally {
    await refundPool.end();
  }
  const baseRefunded = await refundedOf("baseline_payment_orders", paid.responseId);
  const baseRefundLeft = await balanceOf("baseline_accounts", REFUND_ACCOUNT);
  checks.push(
    `baseline refunds: refunded ${baseRefunded} of ${refundCount}, balance ${refundStart} − ${refundCount} = ${baseRefundLeft}: ${baseRefunded === refundCount && baseRefundLeft === refundStart - refundCount ? "OK" : "MISMATCH"}`,
  );
  log(`baseline refund transaction: ${baselineRefunds.perSecond.toFixed(0)}/s`);
} finally {
  await d.close();
}

emit({
  name: "withdrawals",
  title: "Withdrawals on one account, refunds of one payment",
  method:
    `One account with a balance of ${START_BALANCE} fen; ${COUNT} Withdraw RPCs of 1 fen (after ${WARMUP} warm-up) from this process to the payment ` +
    `system (own process, fresh database), ${CONCURRENCY} in flight: each is recorded with its conditional debit in one transaction (concurrent ` +
    "withdrawals share one, with one debit of their total). " +
    `Baseline: the same conditional UPDATE straight on MariaDB from ${CONCURRENCY} pooled connections (mysql2), autocommitted, on a copy of the ` +
    "accounts table in the same database, same count and warm-up. " +
    `Refunds: one settled payment of ${REFUNDED_PAYMENT} fen to another account; ${REFUNDS} Refund RPCs of 1 fen (after ${WARMUP} warm-up), ` +
    `${CONCURRENCY} in flight, each recorded in one transaction (refund order, conditional raise of the payment's refunded sum, conditional debit; ` +
    "concurrent refunds share one, with one raise and one debit of their total). " +
    `Baseline: those three statements in one transaction straight on MariaDB from ${CONCURRENCY} pooled connections, on copies of the tables.`,
  sizes: { withdrawals: COUNT, refunds: REFUNDS, concurrency: CONCURRENCY, warmup: WARMUP },
  figures: [
    {
      what: "withdrawals/s, one account, concurrency 64",
      ours: ours.perSecond,
      baseline: baseline.perSecond,
      baselineWhat: "the same conditional UPDATE straight on MariaDB, 64 connections",
      unit: "/s",
      better: "higher",
      target: "≥ 0.7",
      notes: `p50/p99 ours ${ours.p50Ms.toFixed(1)}/${ours.p99Ms.toFixed(1)} ms, baseline ${baseline.p50Ms.toFixed(1)}/${baseline.p99Ms.toFixed(1)} ms; payment process CPU per withdrawal ${(cpuPerWithdrawal * 1e6).toFixed(0)} µs`,
    },
    {
      what: "refunds/s, one payment, concurrency 64",
      ours: oursRefunds.perSecond,
      baseline: baselineRefunds.perSecond,
      baselineWhat: "the same three statements in one transaction straight on MariaDB, 64 connections",
      unit: "/s",
      better: "higher",
      notes: `p50/p99 ours ${oursRefunds.p50Ms.toFixed(1)}/${oursRefunds.p99Ms.toFixed(1)} ms, baseline ${baselineRefunds.p50Ms.toFixed(1)}/${baselineRefunds.p99Ms.toFixed(1)} ms; payment process CPU per refund ${(cpuPerRefund * 1e6).toFixed(0)} µs`,
    },
  ],
  loadAverage: loadAtStart,
  seconds: (performance.now() - started) / 1000,
  checks,
});
