/**
 * Settlement: credits applied per second, and the lag from acknowledgement to balance.
 *
 *   npx tsx bench/settlement.ts
 *
 * Throughput: a backlog of pending payment orders is loaded into a fresh payment database (with
 * their accounts), then one Settle RPC settles it all; credits/s is the credits it applied over
 * the time it reported. Baseline in the same run: the same per-account sums applied directly on
 * MariaDB as batched `INSERT … ON DUPLICATE KEY UPDATE` into a copy of the accounts table, in
 * chunks of the settlement's own chunk size; credits/s is the same credit count over that time.
 * A second baseline does the settlement's whole work directly in SQL on copies of the tables:
 * find the accounts with pending orders, then per chunk of accounts one transaction that records
 * a settlement, stamps the chunk's pending orders with it, sums them into the balances with one
 * INSERT … SELECT … ON DUPLICATE KEY UPDATE, and records the settlement's totals.
 *
 * Lag: payments sent to Pay at a steady rate while settlement runs on its default schedule
 * (every 5 s); a poller sees each order's settlement commit (the settlement stamps the order and
 * adds to the balance in one transaction, so the stamp is the moment the balance shows it). Lag
 * is that moment minus the moment Pay acknowledged the payment.
 *
 * BENCH_SETTLE_CREDITS (200000), BENCH_SETTLE_ACCOUNTS (10000), BENCH_LAG_RATE (200/s),
 * BENCH_LAG_SECONDS (15).
 */
import { createGrpcClient } from "../services/shared/rpc/grpcClient.js";
import { BusinessClock, idPrefix } from "../services/shared/orders/time.js";
import { PaymentService } from "../gen/payment/v1/payment_pb.js";
import { emit, envInt, loadAverage, log, percentile } from "./lib/common.js";
import { createAccounts, loadPaymentOrders, withConnection } from "./lib/orders.js";
import { deploy } from "./lib/services.js";

const CREDITS = envInt("BENCH_SETTLE_CREDITS", 200_000);
const ACCOUNTS = envInt("BENCH_SETTLE_ACCOUNTS", 10_000);
const CHUNK = 200;
const LAG_RATE = envInt("BENCH_LAG_RATE", 200);
const LAG_SECONDS = envInt("BENCH_LAG_SECONDS", 15);
const SCHEDULE = "*/5 * * * * *";

const started = performance.now();
const loadAtStart = await loadAverage();

// Throughput of one settlement over a backlog.
const d1 = await deploy({ merchant: false, paymentEnv: { SETTLE_CRON: "off", SETTLE_CHUNK_ACCOUNTS: String(CHUNK) }, profileTag: "settlement" });
let settle: { credits: bigint; accounts: number; ms: number; amount: bigint };
let baselineMs: number;
let sqlMs: number;
try {
  log(`settlement: loading ${CREDITS} pending credits over ${ACCOUNTS} accounts`);
  await createAccounts(d1.paymentDatabase, ACCOUNTS, "acct");
  const { amount } = await loadPaymentOrders(d1.paymentDatabase, CREDITS, { accounts: ACCOUNTS, prefix: "acct" });
  const client = createGrpcClient(PaymentService, d1.payment.grpcAddress);
  const r = await client.client.settle({ fullSweep: true }, { timeoutMs: 600_000 });
  client.close();
  settle = { credits: r.creditsApplied, accounts: r.accountsSettled, ms: Number(r.durationMs), amount: r.amountSettled };
  if (settle.credits !== BigInt(CREDITS) || settle.amount !== amount) throw new Error(`settled ${settle.credits} credits, ${settle.amount} fen; expected ${CREDITS}, ${amount}`);
  log(`settlement: ${settle.credits} credits in ${settle.ms} ms`);

  // Baseline: the same sums, batched upserts, straight on MariaDB.
  baselineMs = await withConnection(d1.paymentDatabase, async (c) => {
    const [rows] = (await c.query(
      "SELECT saler_id, SUM(total_fee) AS s FROM payment_orders GROUP BY saler_id ORDER BY saler_id",
    )) as unknown as [{ saler_id: string; s: string }[]];
    await c.query("CREATE TABLE baseline_accounts LIKE accounts");
    await createAccounts(d1.paymentDatabase, ACCOUNTS, "acct", "baseline_accounts");
    const t0 = performance.now();
    for (let i = 0; i < rows.length; i += CHUNK) {
      const chunk = rows.slice(i, i + CHUNK);
      await c.query(
        `INSERT INTO baseline_accounts (saler_id, balance, created_time, updated_time) VALUES ${chunk.map(() => "(?, ?, ?, ?)").join(", ")}
         ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), updated_time = VALUES(updated_time)`,
        chunk.flatMap((r) => [r.saler_id, r.s, "2026-11-26 00:00:05", "2026-11-26 00:00:05"]),
      );
    }
    const ms = performance.now() - t0;
    const [check] = (await c.query("SELECT SUM(balance) AS s FROM baseline_accounts")) as unknown as [{ s: string }[]];
    if (BigInt(check[0]!.s) !== amount) throw new Error("baseline sums differ");
    return ms;
  });
  log(`baseline upserts: ${baselineMs.toFixed(0)} ms`);

  // Baseline: the same work as the settlement, directly in SQL, on copies of the tables.
  sqlMs = await withConnection(d1.paymentDatabase, async (c) => {
    await c.query("CREATE TABLE sql_payment_orders LIKE payment_orders");
    await c.query("INSERT INTO sql_payment_orders SELECT * FROM payment_orders");
    await c.query("UPDATE sql_payment_orders SET settlement_id = NULL");
    await c.query("CREATE TABLE sql_accounts LIKE accounts");
    await createAccounts(d1.paymentDatabase, ACCOUNTS, "acct", "sql_accounts");
    await c.query("CREATE TABLE sql_settlements LIKE settlements");
    const now = "2026-11-26 00:00:05";
    const t0 = performance.now();
    const [due] = (await c.query("SELECT DISTINCT saler_id FROM sql_payment_orders WHERE settlement_id IS NULL ORDER BY saler_id")) as unknown as [
      { saler_id: string }[],
    ];
    for (let i = 0; i < due.length; i += CHUNK) {
      const chunk = due.slice(i, i + CHUNK).map((r) => r.saler_id);
      await c.beginTransaction();
      const [created] = (await c.execute("INSERT INTO sql_settlements (started_time) VALUES (?)", [now])) as unknown as [{ insertId: number }];
      const id = created.insertId;
      const marks = chunk.map(() => "?").join(", ");
      await c.execute(`UPDATE sql_payment_orders SET settlement_id = ? WHERE saler_id IN (${marks}) AND settlement_id IS NULL`, [id, ...chunk]);
      await c.execute(
        `INSERT INTO sql_accounts (saler_id, balance, created_time, updated_time)
         SELECT saler_id, SUM(total_fee), ?, ? FROM sql_payment_orders WHERE settlement_id = ? GROUP BY saler_id ORDER BY saler_id
         ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), updated_time = VALUES(updated_time)`,
        [now, now, id],
      );
      await c.execute(
        `UPDATE sql_settlements s JOIN (SELECT COUNT(DISTINCT saler_id) AS a, COUNT(*) AS n, SUM(total_fee) AS t FROM sql_payment_orders WHERE settlement_id = ?) x
            SET s.finished_time = ?, s.accounts = x.a, s.credits = x.n, s.amount = x.t WHERE s.id = ?`,
        [id, now, id],
      );
      await c.commit();
    }
    const ms = performance.now() - t0;
    const [[check]] = (await c.query("SELECT SUM(balance) AS s FROM sql_accounts")) as unknown as [{ s: string }[]];
    const [[settled]] = (await c.query("SELECT SUM(credits) AS n, SUM(amount) AS t FROM sql_settlements")) as unknown as [{ n: string; t: string }[]];
    if (BigInt(check!.s) !== amount || BigInt(settled!.t) !== amount || Number(settled!.n) !== CREDITS) throw new Error("direct SQL settlement sums differ");
    return ms;
  });
  log(`settlement in direct SQL: ${sqlMs.toFixed(0)} ms`);
} finally {
  await d1.close();
}

// Lag from acknowledgement to balance, settlement on its schedule.
const d2 = await deploy({ merchant: false, paymentEnv: { SETTLE_CRON: SCHEDULE }, profileTag: "settlement-lag" });
let lags: number[];
try {
  log(`settlement lag: ${LAG_RATE} payments/s for ${LAG_SECONDS} s, settlement ${SCHEDULE}`);
  const client = createGrpcClient(PaymentService, d2.payment.grpcAddress);
  const clock = new BusinessClock("Asia/Shanghai");
  const acked = new Map<string, number>();
  const settledAt = new Map<string, number>();
  let sending = true;
  const poller = withConnection(d2.paymentDatabase, async (c) => {
    let lastSettlement = 0;
    while (sending || settledAt.size < acked.size) {
      const [done] = (await c.query("SELECT id FROM settlements WHERE id > ? AND finished_time IS NOT NULL ORDER BY id", [lastSettlement])) as unknown as [
        { id: string }[],
      ];
      if (done.length > 0) {
        const now = performance.now();
        const ids = done.map((r) => Number(r.id));
        lastSettlement = Math.max(...ids);
        const [rows] = (await c.query("SELECT response_id FROM payment_orders WHERE settlement_id IN (?)", [ids])) as unknown as [{ response_id: string }[]];
        for (const r of rows) if (!settledAt.has(r.response_id)) settledAt.set(r.response_id, now);
      }
      if (!sending && performance.now() > sendEnd + 30_000) throw new Error("credits still unsettled 30 s after the last payment");
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  const total = LAG_RATE * LAG_SECONDS;
  const t0 = performance.now();
  let sendEnd = Infinity;
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / LAG_RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const requestTime = clock.current();
    inFlight.push(
      client.client
        .pay({ requestTime, requestId: idPrefix(requestTime) + String(i % 1_000_000).padStart(6, "0"), salerId: `lag${i % 1000}`, totalFee: 100n })
        .then((r) => {
          if (r.responseCode !== "SUCCESS") throw new Error(`Pay: ${r.responseMsg}`);
          acked.set(r.responseId, performance.now());
        }),
    );
  }
  await Promise.all(inFlight);
  sendEnd = performance.now();
  sending = false;
  await poller;
  client.close();
  lags = [...acked].map(([id, at]) => settledAt.get(id)! - at).sort((a, b) => a - b);
} finally {
  await d2.close();
}

const creditsPerSecond = Number(settle.credits) / (settle.ms / 1000);
const baselinePerSecond = CREDITS / (baselineMs / 1000);
const sqlPerSecond = CREDITS / (sqlMs / 1000);
emit({
  name: "settlement",
  title: "Settlement",
  method:
    `Throughput: ${CREDITS} pending payment orders over ${ACCOUNTS} accounts (accounts created beforehand) loaded with INSERT … SELECT into a fresh payment ` +
    `database; one Settle RPC (full sweep, ${CHUNK} accounts per transaction: stamp the orders, sum them, upsert the balances) settles them; ` +
    "credits/s = credits applied / the run's reported duration. Baseline: the same per-account sums (computed beforehand, not timed) applied " +
    `directly on MariaDB with batched INSERT … ON DUPLICATE KEY UPDATE, ${CHUNK} rows per statement, into a copy of the accounts table; ` +
    `credits/s = the same ${CREDITS} credits / its time. Same-work baseline: on copies of the orders (pending again), accounts and settlements tables, ` +
    `the pending accounts found with SELECT DISTINCT, then per ${CHUNK} accounts one transaction: INSERT the settlement, UPDATE its orders' settlement_id, ` +
    "INSERT … SELECT SUM … GROUP BY … ON DUPLICATE KEY UPDATE the balances, UPDATE the settlement's totals (mysql2 prepared statements, one connection, timed from the SELECT). " +
    `Lag: ${LAG_RATE} payments/s straight to Pay for ${LAG_SECONDS} s over 1000 accounts with ` +
    `settlement on its default schedule (${SCHEDULE}); a poller every 20 ms sees each settlement commit; lag = commit seen − Pay acknowledged.`,
  sizes: { credits: CREDITS, accounts: ACCOUNTS, chunkAccounts: CHUNK, lagRate: LAG_RATE, lagSeconds: LAG_SECONDS, schedule: SCHEDULE },
  figures: [
    {
      what: "credits applied per second (one settlement of the backlog)",
      ours: creditsPerSecond,
      baseline: baselinePerSecond,
      baselineWhat: "batched INSERT … ON DUPLICATE KEY UPDATE of the same sums",
      unit: "credits/s",
      better: "higher",
      notes: `${settle.credits} credits, ${settle.accounts} accounts in ${(settle.ms / 1000).toFixed(2)} s; baseline ${(baselineMs / 1000).toFixed(2)} s`,
    },
    {
      what: "credits applied per second, against the same work directly in SQL",
      ours: creditsPerSecond,
      baseline: sqlPerSecond,
      baselineWhat: "stamp, sum and upsert per chunk of accounts in SQL, same chunk size",
      unit: "credits/s",
      better: "higher",
      notes: `direct SQL ${(sqlMs / 1000).toFixed(2)} s`,
    },
    {
      what: `lag from acknowledgement to balance, p50 (settlement ${SCHEDULE})`,
      ours: percentile(lags, 0.5),
      unit: "ms",
      better: "lower",
      notes: `p99 ${percentile(lags, 0.99).toFixed(0)} ms, max ${lags[lags.length - 1]!.toFixed(0)} ms over ${lags.length} payments; the schedule alone gives a mean of 2.5 s`,
    },
  ],
  loadAverage: loadAtStart,
  seconds: (performance.now() - started) / 1000,
  checks: [`${settle.credits} credits settled, amount ${settle.amount} fen as loaded; the direct SQL settlement applied the same credits and amount`, `all ${lags.length} lag payments settled`],
});
