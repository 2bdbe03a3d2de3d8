/**
 * Payments per second end to end, and the hot account.
 *
 *   npx tsx bench/paymentsEndToEnd.ts
 *
 * The payment and merchant systems run as two processes (as deployed) on fresh MariaDB databases
 * and a fresh Redis prefix, settlement on its default schedule. The merchant's Simulate RPC sends
 * the payments at concurrency 64: for each, the merchant stores the order (INIT), calls the
 * payment system's Pay over gRPC (which records the order and buffers the credit in Redis) and
 * stores the answer. Two runs: amounts spread over many accounts (uniform), then every payment
 * to one account (hot). Baselines in the same run: `sysbench oltp_insert`, 16 threads, on the same
 * MariaDB; and the bare pipeline (barePipelineChild.ts): the same per-payment work with the same
 * batching, written directly on mysql2, a plain grpc-js hop and ioredis, in two processes, over
 * the same accounts, count and concurrency, taking turns with the uniform run. Afterwards everything paid must be credited exactly
 * once, by both.
 *
 * BENCH_PAYMENTS (20000), BENCH_PAYMENT_ACCOUNTS (1000), BENCH_SYSBENCH_SECONDS (20).
 */
import { createGrpcClient } from "../services/shared/rpc/grpcClient.js";
import { MerchantService } from "../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../gen/payment/v1/payment_pb.js";
import { emit, envInt, loadAverage, log, type BenchResult, type Throughput } from "./lib/common.js";
import { deploy } from "./lib/services.js";
import { sysbenchOltpInsert } from "./lib/sysbench.js";
import { startBarePipeline, type BareRun } from "./lib/barePipeline.js";

const COUNT = envInt("BENCH_PAYMENTS", 20_000);
const ACCOUNTS = envInt("BENCH_PAYMENT_ACCOUNTS", 1000);
const CONCURRENCY = 64;
const WARMUP = Math.min(envInt("BENCH_PAYMENT_WARMUP", 2000), COUNT);
/** The uniform run and the bare pipeline take turns, each turn COUNT / TURNS payments. */
const TURNS = 2;
const SYSBENCH_THREADS = 16;
const SYSBENCH_SECONDS = envInt("BENCH_SYSBENCH_SECONDS", 20);

const started = performance.now();
const loadAtStart = await loadAverage();
const d = await deploy({ profileTag: "payments" });
const merchantProcess = d.merchant!;
const merchant = createGrpcClient(MerchantService, merchantProcess.grpcAddress);
const payment = createGrpcClient(PaymentService, d.payment.grpcAddress);

interface Run extends Throughput {
  amount: bigint;
  cpu: { merchant: number; payment: number };
}

async function simulate(accounts: number, count: number, seed: bigint, prefix: string): Promise<Run> {
  const cpu0 = { merchant: await merchantProcess.cpuSeconds(), payment: await d.payment.cpuSeconds() };
  const r = await merchant.client.simulate(
    { count, concurrency: CONCURRENCY, accounts, accountPrefix: prefix, minAmount: 1n, maxAmount: 100_000n, seed },
    { timeoutMs: 600_000 },
  );
  if (r.succeeded !== count) throw new Error(`simulation: ${r.succeeded} of ${count} succeeded, ${r.failed} failed, ${r.unknown} unknown`);
  const seconds = Number(r.elapsedMs) / 1000;
  const cpu = { merchant: (await merchantProcess.cpuSeconds()) - cpu0.merchant, payment: (await d.payment.cpuSeconds()) - cpu0.payment };
  return { count, seconds, perSecond: r.throughput, p50Ms: r.latencyP50Ms, p99Ms: r.latencyP99Ms, amount: r.amountSucceeded, cpu };
}

/** Several runs as one: their payments over their time, their CPU added up, latencies per run. */
function combine(runs: Run[]): Run & { latency: string } {
  const count = runs.reduce((a, r) => a + r.count, 0);
  const seconds = runs.reduce((a, r) => a + r.seconds, 0);
  return {
    count,
    seconds,
    perSecond: count / seconds,
    // Percentiles do not add up: the worst turn's, and each turn's in `latency`.
    p50Ms: runs.reduce((a, r) => Math.max(a, r.p50Ms), 0),
    p99Ms: runs.reduce((a, r) => Math.max(a, r.p99Ms), 0),
    amount: runs.reduce((a, r) => a + r.amount, 0n),
    cpu: { merchant: runs.reduce((a, r) => a + r.cpu.merchant, 0), payment: runs.reduce((a, r) => a + r.cpu.payment, 0) },
    latency: runs.map((r) => `${r.p50Ms.toFixed(1)}/${r.p99Ms.toFixed(1)}`).join(", "),
  };
}

const cpuPerPayment = (r: { count: number; cpu: { merchant: number; payment: number } }) => `CPU per payment: merchant ${((r.cpu.merchant / r.count) * 1e6).toFixed(0)} µs, payment ${((r.cpu.payment / r.count) * 1e6).toFixed(0)} µs`;

let result: BenchResult;
try {
  log(`payments: warm-up ${WARMUP}, then ${COUNT} uniform over ${ACCOUNTS} accounts taking ${TURNS} turns with the bare pipeline, and ${COUNT} to one account, concurrency ${CONCURRENCY}`);
  // The warm-up pays the same accounts as the uniform run, so both runs meet existing accounts.
  const warm = await simulate(ACCOUNTS, WARMUP, 1n, "bench");
  const perTurn = Math.ceil(COUNT / TURNS);
  const bareRun = await startBarePipeline({
    paymentDatabase: d.paymentDatabase,
    merchantDatabase: d.merchantDatabase,
    count: perTurn,
    warmup: WARMUP,
    concurrency: CONCURRENCY,
    accounts: ACCOUNTS,
    seed: 2,
  });
  // Turns, so that a change in the machine's speed during the run falls on both alike.
  const turns: Run[] = [];
  let bare: BareRun;
  try {
    for (let t = 0; t < TURNS; t++) {
      const ours = await simulate(ACCOUNTS, perTurn, BigInt(2 + t), "bench");
      turns.push(ours);
      const bareCpu = await bareRun.turn();
      log(`turn ${t + 1}: ours ${ours.perSecond.toFixed(0)}/s, ${cpuPerPayment(ours)}; bare merchant ${bareCpu.merchant.toFixed(0)} µs, payment ${bareCpu.payment.toFixed(0)} µs`);
    }
  } finally {
    bare = await bareRun.finish();
  }
  const uniform = combine(turns);
  log(`uniform: ${uniform.perSecond.toFixed(0)}/s (turns ${turns.map((t) => t.perSecond.toFixed(0)).join(", ")}), bare pipeline: ${bare.perSecond.toFixed(0)}/s`);
  if (!bare.check.endsWith("OK")) process.exitCode = 1;
  const hot = await simulate(1, COUNT, 9n, "hot");
  log(`hot: ${hot.perSecond.toFixed(0)}/s`);

  // Everything paid is credited exactly once.
  await payment.client.settle({ fullSweep: true }, { timeoutMs: 600_000 });
  const expected = warm.amount + uniform.amount + hot.amount;
  let credited = 0n;
  let pending = 0n;
  let pageToken = "";
  do {
    const page = await payment.client.listAccounts({ pageSize: 1000, pageToken });
    for (const a of page.accounts) {
      credited += a.balance;
      pending += a.pending;
    }
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  const check = `paid ${expected} fen, credited ${credited} fen, pending ${pending} fen: ${credited === expected && pending === 0n ? "OK" : "MISMATCH"}`;
  if (credited !== expected || pending !== 0n) process.exitCode = 1;

  merchant.close();
  payment.close();
  await d.close();

  log(`sysbench oltp_insert, ${SYSBENCH_THREADS} threads, ${SYSBENCH_SECONDS} s`);
  const sb = await sysbenchOltpInsert(SYSBENCH_THREADS, SYSBENCH_SECONDS);

  result = {
    name: "payments",
    title: "Payments end to end (merchant → payment → both databases and Redis)",
    method:
      "Payment and merchant systems as two processes on fresh databases and Redis prefix, settlement on its default 5 s schedule. " +
      `The merchant's Simulate RPC sends ${COUNT} payments at concurrency ${CONCURRENCY} after a ${WARMUP}-payment warm-up, in ${TURNS} turns of ${Math.ceil(COUNT / TURNS)} ` +
      "taken with the bare pipeline's (so that a change in the machine's speed falls on both alike; throughput is all turns' payments over their time): merchant INSERT (INIT), " +
      "gRPC Pay (payment INSERT, Redis buffer), merchant UPDATE with the answer; latency is per payment as the merchant saw it. " +
      `Uniform: accounts drawn from ${ACCOUNTS}; hot: every payment to one account. Baseline: sysbench ${sb.version} oltp_insert, ` +
      `${SYSBENCH_THREADS} threads for ${SYSBENCH_SECONDS} s on a fresh database of the same server (one autocommitted INSERT per transaction). ` +
      "Bare pipeline: the same per-payment work (merchant INSERT, one gRPC Pay, payment INSERT, Redis MULTI, merchant UPDATE) with the services' " +
      "batching (WriteBatcher, same limits), written directly: mysql2 prepared statements on copies of the two tables, a plain @grpc/grpc-js " +
      "server and client with the protobuf-es codec, ioredis; no query builder, validation, call policy or logging; same count, warm-up, " +
      "accounts and concurrency, its two processes measured like the services. " +
      "CPU per payment is each service process's user+system time over the run divided by the payments.",
    sizes: { payments: COUNT, accounts: ACCOUNTS, concurrency: CONCURRENCY, warmup: WARMUP, sysbenchThreads: SYSBENCH_THREADS, sysbenchSeconds: SYSBENCH_SECONDS },
    figures: [
      {
        what: `payments/s end to end, uniform over ${ACCOUNTS} accounts`,
        ours: uniform.perSecond,
        baseline: sb.insertsPerSecond,
        baselineWhat: `sysbench oltp_insert, ${SYSBENCH_THREADS} threads (inserts/s)`,
        unit: "/s",
        better: "higher",
        target: "≥ 0.25",
        notes: `p50/p99 per turn ${uniform.latency} ms (sysbench p50 ${sb.p50Ms ?? "?"} ms, p99 ${sb.p99Ms} ms); ${cpuPerPayment(uniform)}`,
      },
      {
        what: `payments/s end to end, uniform over ${ACCOUNTS} accounts, against the bare pipeline`,
        ours: uniform.perSecond,
        baseline: bare.perSecond,
        baselineWhat: "the same work written directly (mysql2, plain grpc-js, ioredis), same batching",
        unit: "/s",
        better: "higher",
        target: "≥ 0.8",
        notes: `bare p50 ${bare.p50Ms.toFixed(1)} ms, p99 ${bare.p99Ms.toFixed(1)} ms; bare ${cpuPerPayment(bare)}`,
      },
      {
        what: "payments/s end to end, every payment to one account (hot)",
        ours: hot.perSecond,
        baseline: uniform.perSecond,
        baselineWhat: "the uniform run above",
        unit: "/s",
        better: "higher",
        target: "≥ 0.95",
        notes: `p50 ${hot.p50Ms.toFixed(1)} ms, p99 ${hot.p99Ms.toFixed(1)} ms; ${cpuPerPayment(hot)}`,
      },
    ],
    loadAverage: loadAtStart,
    seconds: (performance.now() - started) / 1000,
    checks: [check, bare.check],
  };
} catch (err) {
  merchant.close();
  payment.close();
  await d.close().catch(() => {});
  throw err;
}
emit(result);
