/**
 * Scaling out on distributed engines, measured end to end through the merchant's gRPC API with
 * real processes (as the cluster suites run them):
 *
 *   npx tsx bench/scaling.ts
 *
 * Configurations, each on fresh databases and a fresh Redis key prefix:
 *   1. one payment instance, the shared MariaDB, the shared Redis (the same-run baseline);
 *   2. three payment instances behind the merchant (round-robin), same backends;
 *   3. one payment instance, the credit buffer on a local 3-master Redis Cluster;
 *   4. one payment and one merchant instance on a local 3-node Galera cluster (node 0);
 *   5. two payment and two merchant instances on two different Galera nodes.
 * For each: payments/s over BENCH_SECONDS (spread over 100 accounts), the settlement lag (from
 * the end of the payment load until every payment is credited; settlement runs every second),
 * and withdrawals/s of 1 fen from one hot account. Configuration 1 runs again right before 2, 3
 * and 4, and 4 before 5, so each ratio compares two neighbouring measurements (the machine may
 * be shared). Prints a table; it never judges the timings. The load average is printed
 * with every figure.
 *
 * Environment: BENCH_MYSQL_URL / BENCH_REDIS_URL (defaults TEST_* or the local servers),
 * BENCH_SECONDS (15), BENCH_CONCURRENCY (32), BENCH_ONLY (comma-separated configuration numbers).
 */
import { loadavg } from "node:os";
import type { Client } from "@connectrpc/connect";
import type { MerchantService } from "../gen/merchant/v1/merchant_pb.js";
import { FaultPlatform } from "../test/faults/platform.js";
import { sleep } from "../test/faults/processes.js";
import { LocalGalera, LocalRedisCluster } from "../test/cluster/engines.js";
import { envInt, MYSQL_URL, REDIS_URL, serverUrl } from "./lib/common.js";

const SECONDS = envInt("BENCH_SECONDS", 15);
const CONCURRENCY = envInt("BENCH_CONCURRENCY", 32);
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(",").map(Number)) : undefined;

interface Figures {
  label: string;
  paymentsPerSecond: number;
  settlementLagMs: number;
  withdrawalsPerSecond: number;
  errors: number;
}

/** Runs `call` in `concurrency` loops for `seconds`; the number of successes per second. */
async function forSeconds(seconds: number, concurrency: number, call: (worker: number, i: number) => Promise<boolean>): Promise<{ perSecond: number; errors: number }> {
  const until = Date.now() + seconds * 1000;
  const started = Date.now();
  let ok = 0;
  let errors = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = 0; Date.now() < until; i++) {
        try {
          if (await call(w, i)) ok++;
          else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  return { perSecond: ok / ((Date.now() - started) / 1000), errors };
}

async function measure(label: string, platform: FaultPlatform): Promise<Figures> {
  const merchants: Client<typeof MerchantService>[] = platform.merchantClients;
  const pick = (w: number) => merchants[w % merchants.length]!;
  const pay = async (w: number, i: number) => {
    const { order } = await pick(w).pay({ salerId: `acct${(w * 7 + i) % 100}`, totalFee: 100n }, { timeoutMs: 10_000 });
    return order?.state === "SUCCESS";
  };
  // Warm-up: connections, prepared statements, every account created.
  await forSeconds(2, CONCURRENCY, pay);
  const payments = await forSeconds(SECONDS, CONCURRENCY, pay);
  const stopped = Date.now();
  const pending = async () => Number((await platform.query<{ n: string }>("payment", "SELECT COUNT(*) AS n FROM payment_orders WHERE settlement_id IS NULL"))[0]!.n);
  while ((await pending()) > 0 && Date.now() - stopped < 120_000) await sleep(100);
  const settlementLagMs = Date.now() - stopped;

  // One hot account with enough money for every withdrawal.
  const { order: funded } = await merchants[0]!.pay({ salerId: "hot", totalFee: 1_000_000_000n }, { timeoutMs: 10_000 });
  if (funded?.state !== "SUCCESS") throw new Error("funding the hot account failed");
  while ((await pending()) > 0) await sleep(100);
  const withdrawals = await forSeconds(SECONDS, CONCURRENCY, async (w) => {
    const { order } = await pick(w).withdraw({ salerId: "hot", withdrawMoney: 1n }, { timeoutMs: 10_000 });
    return order?.state === "SUCCESS";
  });
  return { label, paymentsPerSecond: payments.perSecond, settlementLagMs, withdrawalsPerSecond: withdrawals.perSecond, errors: payments.errors + withdrawals.errors };
}

const BENCH_ENV = {
  paymentEnv: { SETTLE_CHUNK_ACCOUNTS: "200", SETTLE_SWEEP_EVERY: "12", PAYMENT_DB_POOL: "16" },
  merchantEnv: { MERCHANT_DB_POOL: "16", PAYMENT_CALL_TIMEOUT_MS: "10000" },
};

async function run(label: string, options: Partial<ConstructorParameters<typeof FaultPlatform>[0]>): Promise<Figures> {
  const platform = new FaultPlatform({ scenario: label, seed: 1, mysqlServerUrl: serverUrl(), redisUrl: REDIS_URL, ...BENCH_ENV, ...options });
  try {
    await platform.start();
    return await measure(label, platform);
  } finally {
    await platform.close();
    await platform.dropStorage(options.redisClusterNodes ? undefined : REDIS_URL);
  }
}

const load = () => loadavg().map((l) => l.toFixed(1)).join(", ");
console.log(`bench/scaling: ${SECONDS} s per phase, concurrency ${CONCURRENCY}; MariaDB ${new URL(MYSQL_URL).host}, Redis ${new URL(REDIS_URL).host}`);
console.log(`load average before: ${load()}`);
/** Each figure with the baseline measured just before it, on the same storage. */
const rows: { r: Figures; base: Figures | undefined }[] = [];
const want = (n: number) => !ONLY || ONLY.has(n);
const show = (r: Figures, base: Figures | undefined) => {
  rows.push({ r, base });
  console.log(`${r.label}: ${r.paymentsPerSecond.toFixed(1)} payments/s, settlement lag ${r.settlementLagMs} ms, ${r.withdrawalsPerSecond.toFixed(1)} withdrawals/s; load average ${load()}`);
};
const baseline = async (suffix = "") => {
  const r = await run(`1 payment instance, MariaDB, Redis${suffix}`, {});
  show(r, undefined);
  return r;
};
// The machine is shared: a baseline right before each variant, so each ratio is of two
// neighbouring measurements.
if (want(2)) show(await run("3 payment instances, MariaDB, Redis", { paymentInstances: 3 }), await baseline());
if (want(3)) {
  const base = await baseline(" (again)");
  const cluster = await LocalRedisCluster.start(3, 1, 2000);
  try {
    show(await run("1 payment instance, MariaDB, Redis Cluster (3+3)", { redisClusterNodes: cluster.seedList }), base);
  } finally {
    await cluster.close();
  }
}
if (want(4) || want(5)) {
  const base = await baseline(" (again)");
  const galera = await LocalGalera.start(3);
  try {
    const urls = galera.nodes.map((n) => galera.url(n));
    const one = await run("1 payment + 1 merchant on Galera node 0", { mysqlServerUrl: urls[0]! });
    show(one, base);
    if (want(5)) {
      show(
        await run("2 payment + 2 merchant on Galera nodes 0 and 1", { mysqlServerUrl: urls[0]!, paymentInstances: 2, merchantInstances: 2, instanceServerUrls: [urls[0]!, urls[1]!] }),
        one,
      );
    }
  } finally {
    await galera.close();
  }
}
console.log(`load average after: ${load()}`);
console.log("\n| configuration | payments/s | settlement lag (ms) | withdrawals/s, one account | against | payments ratio | withdrawals ratio |");
console.log("|---|---:|---:|---:|---|---:|---:|");
for (const { r, base } of rows) {
  const ratio = (a: number, b: number | undefined) => (b ? (a / b).toFixed(2) : "");
  console.log(
    `| ${r.label} | ${r.paymentsPerSecond.toFixed(1)} | ${r.settlementLagMs} | ${r.withdrawalsPerSecond.toFixed(1)} | ${base?.label ?? "baseline"} | ${ratio(r.paymentsPerSecond, base?.paymentsPerSecond)} | ${ratio(r.withdrawalsPerSecond, base?.withdrawalsPerSecond)} |`,
  );
}
process.exit(0);
