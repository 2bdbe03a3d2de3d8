/**
 * Runs the bare pipeline (bench/barePipelineChild.ts) beside a deployment: copies of its
 * merchant_orders and payment_orders tables (same columns and indexes), a Redis prefix of its
 * own, the two processes started as the services are (with the same Node.js flags), and each process's CPU read from /proc
 * around each measured turn (the caller takes turns between it and the services). Afterwards every payment must be stored on both sides as SUCCESS
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

/** A started bare pipeline, warmed up: each turn() runs `count` payments; finish() checks and stops it. */
export interface BarePipeline {
  /** Runs one turn; answers its CPU per payment (µs) in each process. */
  turn(): Promise<{ merchant: number; payment: number }>;
  finish(): Promise<BareRun>;
}

export async function startBarePipeline(options: {
  paymentDatabase: string;
  merchantDatabase: string;
  count: number;
  warmup: number;
  concurrency: number;
  accounts: number;
  seed: number;
}): Promise<BarePipeline> {
  await withConnection(options.paymentDatabase, (c) => c.query("CREATE TABLE bare_payment_orders LIKE payment_orders"));
  await withConnection(options.merchantDatabase, (c) => c.query("CREATE TABLE bare_merchant_orders LIKE merchant_orders"));
  const prefix = uniqueName("bare");
  const payment = start("payment", { BARE_MYSQL_URL: databaseUrl(options.paymentDatabase), BARE_REDIS_URL: REDIS_URL, BARE_REDIS_PREFIX: prefix });
  let merchant: ReturnType<typeof start> | undefined;
  const redis = new Redis(REDIS_URL);
  const stop = async () => {
    merchant?.child.kill("SIGKILL");
    payment.child.kill("SIGTERM");
    const keys = await redis.keys(`{${prefix}}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  };
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
  } catch (err) {
    await stop();
    throw err;
  }
  const m = merchant;
  const cpu = { merchant: 0, payment: 0 };
  let turns = 0;
  let last: (Omit<BareRun, "cpu" | "check"> & { amount: string }) | undefined;
  return {
    async turn() {
      const cpu0 = { merchant: await procCpuSeconds(m.child.pid!), payment: await procCpuSeconds(payment.child.pid!) };
      m.child.stdin!.write("go\n");
      last = JSON.parse(await nextLine(m.lines, "the merchant process")) as typeof last;
      const used = { merchant: (await procCpuSeconds(m.child.pid!)) - cpu0.merchant, payment: (await procCpuSeconds(payment.child.pid!)) - cpu0.payment };
      cpu.merchant += used.merchant;
      cpu.payment += used.payment;
      turns++;
      return { merchant: (used.merchant / options.count) * 1e6, payment: (used.payment / options.count) * 1e6 };
    },
    async finish() {
      try {
        if (!last) throw new Error("bare pipeline: no measured turn");
        m.child.stdin!.end("end\n");
        await m.exited;
        const total = options.count * turns + options.warmup;
        const [[mo]] = (await withConnection(options.merchantDatabase, (c) =>
          c.query("SELECT COUNT(*) AS n, COALESCE(SUM(amount), 0) AS s FROM bare_merchant_orders WHERE state = 'SUCCESS'"),
        )) as unknown as [{ n: string; s: string }[]];
        const [[po]] = (await withConnection(options.paymentDatabase, (c) =>
          c.query("SELECT COUNT(*) AS n, COALESCE(SUM(total_fee), 0) AS s FROM bare_payment_orders WHERE response_code = 'SUCCESS'"),
        )) as unknown as [{ n: string; s: string }[]];
        const buffered = Object.values(await redis.hgetall(`{${prefix}}:amounts`)).reduce((a, v) => a + BigInt(v), 0n);
        const paid = BigInt(last.amount);
        const ok = Number(mo!.n) === total && Number(po!.n) === total && BigInt(mo!.s) === paid && BigInt(po!.s) === paid && buffered === paid;
        const check = `bare pipeline: ${mo!.n} merchant and ${po!.n} payment orders of ${total}, ${paid} fen paid, ${buffered} fen buffered: ${ok ? "OK" : "MISMATCH"}`;
        return { ...last, cpu, check };
      } finally {
        await stop();
      }
    },
  };
}
