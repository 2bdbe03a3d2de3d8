/**
 * Runs the bare pipeline (bench/barePipelineChild.ts) beside a deployment: copies of its
 * merchant_orders and payment_orders tables (same columns and indexes), a Redis prefix of its
 * own, the two processes started as the services are (with the same Node.js flags), and each process's CPU read from /proc
 * around the measured run. Afterwards every payment must be stored on both sides as SUCCESS
 * and credited in Redis exactly once.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Redis } from "ioredis";
import { REDIS_URL, ROOT, databaseUrl, uniqueName } from "./common.js";
import { withConnection } from "./orders.js";
import { procCpuSeconds } from "./services.js";
import { SERVICE_NODE_FLAGS } from "../../services/shared/runtime/nodeFlags.js";

export interface BareRun {
  count: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  cpu: { merchant: number; payment: number };
  check: string;
}

function start(mode: "payment" | "merchant", env: Record<string, string>): { child: ChildProcess; lines: AsyncIterator<string>; exited: Promise<unknown> } {
  const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, "--import", "tsx", join(ROOT, "bench", "barePipelineChild.ts"), mode], {
    cwd: ROOT,
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  // Listened for from the start: the process may be gone before anyone waits for it.
  const exited = once(child, "exit");
  return { child, lines, exited };
}

async function nextLine(lines: AsyncIterator<string>, what: string): Promise<string> {
  const r = await lines.next();
  if (r.done) throw new Error(`bare pipeline: ${what} ended before it answered`);
  return r.value;
}

export async function runBarePipeline(options: {
  paymentDatabase: string;
  merchantDatabase: string;
  count: number;
  warmup: number;
  concurrency: number;
  accounts: number;
  seed: number;
}): Promise<BareRun> {
  await withConnection(options.paymentDatabase, (c) => c.query("CREATE TABLE bare_payment_orders LIKE payment_orders"));
  await withConnection(options.merchantDatabase, (c) => c.query("CREATE TABLE bare_merchant_orders LIKE merchant_orders"));
  const prefix = uniqueName("bare");
  const payment = start("payment", { BARE_MYSQL_URL: databaseUrl(options.paymentDatabase), BARE_REDIS_URL: REDIS_URL, BARE_REDIS_PREFIX: prefix });
  let merchant: ReturnType<typeof start> | undefined;
  const redis = new Redis(REDIS_URL);
  try {
    const port = Number(await nextLine(payment.lines, "the payment process"));
    merchant = start("merchant", {
      BARE_MYSQL_URL: databaseUrl(options.merchantDatabase),
      BARE_PAYMENT_ADDRESS: `127.0.0.1:${port}`,
      BARE_COUNT: String(options.count),
      BARE_WARMUP: String(options.warmup),
      BARE_CONCURRENCY: String(options.concurrency),
      BARE_ACCOUNTS: String(options.accounts),
      BARE_SEED: String(options.seed),
    });
    if ((await nextLine(merchant.lines, "the merchant process")) !== "warm") throw new Error("bare pipeline: no warm-up");
    const cpu0 = { merchant: await procCpuSeconds(merchant.child.pid!), payment: await procCpuSeconds(payment.child.pid!) };
    merchant.child.stdin!.write("go\n");
    const result = JSON.parse(await nextLine(merchant.lines, "the merchant process")) as Omit<BareRun, "cpu" | "check"> & { amount: string };
    const cpu = { merchant: (await procCpuSeconds(merchant.child.pid!)) - cpu0.merchant, payment: (await procCpuSeconds(payment.child.pid!)) - cpu0.payment };

    const total = options.count + options.warmup;
    const [[m]] = (await withConnection(options.merchantDatabase, (c) =>
      c.query("SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS s FROM bare_merchant_orders WHERE state = 'SUCCESS'"),
    )) as unknown as [{ n: string; s: string }[]];
    const [[p]] = (await withConnection(options.paymentDatabase, (c) =>
      c.query("SELECT COUNT(*) AS n, COALESCE(SUM(total_fee), 0) AS s FROM bare_payment_orders WHERE response_code = 'SUCCESS'"),
    )) as unknown as [{ n: string; s: string }[]];
    const buffered = Object.values(await redis.hgetall(`{${prefix}}:amounts`)).reduce((a, v) => a + BigInt(v), 0n);
    const paid = BigInt(result.amount);
    const ok = Number(m!.n) === total && Number(p!.n) === total && BigInt(m!.s) === paid && BigInt(p!.s) === paid && buffered === paid;
    const check = `bare pipeline: ${m!.n} merchant and ${p!.n} payment orders of ${total}, ${paid} fen paid, ${buffered} fen buffered: ${ok ? "OK" : "MISMATCH"}`;
    await merchant.exited;
    return { ...result, cpu, check };
  } finally {
    merchant?.child.kill("SIGKILL");
    payment.child.kill("SIGTERM");
    const keys = await redis.keys(`{${prefix}}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
}
