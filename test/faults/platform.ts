/**
 * The platform under fault: payment, merchant and reconciliation services as real processes on
 * fixed loopback ports (so a restarted process is found where the killed one was), fresh
 * databases and a fresh Redis key prefix; a steady payment and withdrawal load through the
 * merchant's gRPC API; a sampler of balances; and the final accounting that decides whether a
 * run lost or doubled anything.
 *
 * Every random choice comes from one seed (FAULT_SEED replays a run): the fault schedule, and
 * each load worker's sequence of accounts, amounts and order types.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomInt } from "node:crypto";
import mysql from "mysql2/promise";
import { Cluster, Redis } from "ioredis";
import { ConnectError, type Client } from "@connectrpc/connect";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { OrderType as ReconOrderType, ReconService, type Run } from "../../gen/recon/v1/recon_pb.js";
import { createGrpcClient } from "../../services/shared/rpc/grpcClient.js";
import { BusinessClock } from "../../services/shared/orders/time.js";
import { uniqueName } from "../harness.js";
import { databaseUrl, freePort, serviceProcess, sleep, type ManagedProcess, type UnexpectedExit } from "./processes.js";
import { Random } from "../support/random.js";
import { deleteRedisKeys, dropDatabases } from "../support/cleanup.js";

const traceStart = Date.now();

/** With FAULT_TRACE=1, a timeline of the faults and recoveries on stderr. */
export function trace(message: string): void {
  if (process.env.FAULT_TRACE === "1") process.stderr.write(`      [${((Date.now() - traceStart) / 1000).toFixed(2)}s] ${message}\n`);
}

/**
 * A shuffled list of n fault kinds in the given shares (rounded; the first kind takes what
 * rounding leaves), never starting with `notFirst`.
 */
export function faultSchedule<K extends string>(rng: Random, n: number, shares: [K, number][], notFirst?: K): K[] {
  const list: K[] = [];
  for (const [kind, share] of shares.slice(1)) for (let i = 0; i < Math.round(n * share) && list.length < n; i++) list.push(kind);
  while (list.length < n) list.push(shares[0]![0]);
  for (let i = list.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  const swap = list.findIndex((k) => k !== notFirst);
  if (notFirst !== undefined && list[0] === notFirst && swap > 0) [list[0], list[swap]] = [list[swap]!, list[0]!];
  return list;
}

/** FAULT_SEED when set (to replay a run), else a fresh one. */
export function faultSeed(): number {
  const raw = process.env.FAULT_SEED;
  if (raw === undefined || raw === "") return randomInt(1, 2 ** 31);
  if (!/^\d{1,10}$/.test(raw) || Number(raw) >= 2 ** 32) throw new Error(`FAULT_SEED must be an integer in [0, 2^32), got "${raw}"`);
  return Number(raw);
}

/** A whole number from the environment, or the fallback. */
export function envCount(name: string, fallback: number, min = 0, max = 10_000): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new Error(`${name} must be an integer in [${min}, ${max}], got "${raw}"`);
  return Number(raw);
}

// ---------------------------------------------------------------------------------------------
// The platform

export interface PlatformOptions {
  scenario: string;
  seed: number;
  /** Server (no database) that holds the payment and merchant databases. */
  mysqlServerUrl: string;
  /** The payment system's Redis. */
  redisUrl: string;
  /** A Redis Cluster instead (its seed nodes, REDIS_CLUSTER_NODES); redisUrl is then ignored. */
  redisClusterNodes?: string;
  /** Payment instances on the same storage (default 1); the merchant balances over them. */
  paymentInstances?: number;
  /** Merchant instances on the same storage (default 1); the load spreads over them. */
  merchantInstances?: number;
  /**
   * Servers of a multi-primary cluster: instance i of each service uses server i modulo their
   * number (default: mysqlServerUrl for all).
   */
  instanceServerUrls?: string[];
  /** Extra environment for each service. */
  paymentEnv?: Record<string, string>;
  merchantEnv?: Record<string, string>;
}

/** Settings that make faults land in interesting places and let the run finish quickly. */
const SERVICE_DEFAULTS = {
  payment: {
    // Settle every second, one account per transaction: a settlement run is a few dozen
    // transactions long, a window a kill can land in.
    SETTLE_CRON: "* * * * * *",
    SETTLE_CHUNK_ACCOUNTS: "1",
    // A settler killed mid-run holds the lease until it expires; the next process settles
    // after that.
    SETTLE_LEASE_MS: "2000",
    // No periodic sweep of the orders table: lost buffer data must be noticed, not swept up.
    SETTLE_SWEEP_EVERY: "1000000",
    PAYMENT_DB_POOL: "8",
  },
  merchant: {
    PAYMENT_CALL_TIMEOUT_MS: "3000",
    RESOLVE_CRON: "*/2 * * * * *",
    RESOLVE_INIT_AFTER_SECONDS: "2",
    CLOSE_UNKNOWN_AFTER_SECONDS: "3",
    MERCHANT_DB_POOL: "8",
  },
};

export const ACCOUNTS = Array.from({ length: 16 }, (_, i) => `acct${String(i).padStart(2, "0")}`);

export class FaultPlatform {
  readonly clock = new BusinessClock("Asia/Shanghai");
  readonly redisPrefix = uniqueName("fault");
  readonly paymentDb = uniqueName("t_fault_payment");
  readonly merchantDb = uniqueName("t_fault_merchant");
  readonly reconDir = mkdtempSync(join(tmpdir(), "fault-recon-"));
  payment!: ManagedProcess;
  merchant!: ManagedProcess;
  /** Every payment instance (the first is `payment`). */
  payments: ManagedProcess[] = [];
  /** Every merchant instance (the first is `merchant`). */
  merchants: ManagedProcess[] = [];
  recon!: ManagedProcess;
  /** Balanced over every payment instance. */
  paymentClient!: Client<typeof PaymentService>;
  merchantClient!: Client<typeof MerchantService>;
  /** One client per merchant instance. */
  merchantClients: Client<typeof MerchantService>[] = [];
  reconClient!: Client<typeof ReconService>;
  /** Reads the lease key and other buffer state; never writes. */
  redis!: Redis | Cluster;
  private closers: (() => void)[] = [];
  private pools = new Map<string, mysql.Pool>();

  constructor(readonly options: PlatformOptions) {}

  async start(): Promise<void> {
    const o = this.options;
    const ports = () => Promise.all([freePort(), freePort()]);
    const paymentPorts = await Promise.all(Array.from({ length: o.paymentInstances ?? 1 }, ports));
    const merchantPorts = await Promise.all(Array.from({ length: o.merchantInstances ?? 1 }, ports));
    const [rg, rh] = await ports();
    const serverOf = (i: number) => (o.instanceServerUrls?.length ? o.instanceServerUrls[i % o.instanceServerUrls.length]! : o.mysqlServerUrl);
    const paymentAddress = paymentPorts.map(([pg]) => `127.0.0.1:${pg}`).join(",");
    const merchantAddress = `127.0.0.1:${merchantPorts[0]![0]}`;
    const redisEnv: Record<string, string> = o.redisClusterNodes ? { REDIS_CLUSTER_NODES: o.redisClusterNodes } : { REDIS_URL: o.redisUrl };
    this.payments = paymentPorts.map(([pg, ph], i) =>
      serviceProcess("payment", {
        HOST: "127.0.0.1",
        PAYMENT_GRPC_PORT: String(pg),
        PAYMENT_HTTP_PORT: String(ph),
        PAYMENT_MYSQL_URL: databaseUrl(serverOf(i), this.paymentDb),
        ...redisEnv,
        PAYMENT_REDIS_PREFIX: this.redisPrefix,
        ...SERVICE_DEFAULTS.payment,
        ...o.paymentEnv,
      }),
    );
    this.merchants = merchantPorts.map(([mg, mh], i) =>
      serviceProcess("merchant", {
        HOST: "127.0.0.1",
        MERCHANT_GRPC_PORT: String(mg),
        MERCHANT_HTTP_PORT: String(mh),
        MERCHANT_MYSQL_URL: databaseUrl(serverOf(i), this.merchantDb),
        PAYMENT_ADDRESS: paymentAddress,
        ...SERVICE_DEFAULTS.merchant,
        ...o.merchantEnv,
      }),
    );
    this.payment = this.payments[0]!;
    this.merchant = this.merchants[0]!;
    this.recon = serviceProcess("recon", {
      HOST: "127.0.0.1",
      RECON_GRPC_PORT: String(rg),
      RECON_HTTP_PORT: String(rh),
      MERCHANT_ADDRESS: merchantAddress,
      PAYMENT_ADDRESS: paymentAddress,
      RECON_DIR: this.reconDir,
      RECON_CUTOFF_LAG_SECONDS: "0",
    });
    // The first instance of each creates the schema; the others start once it is there.
    await Promise.all([this.payment.start(), this.merchant.start(), this.recon.start()]);
    await Promise.all([...this.payments.slice(1), ...this.merchants.slice(1)].map((p) => p.start()));
    const payment = createGrpcClient(PaymentService, paymentAddress);
    const merchants = merchantPorts.map(([mg]) => createGrpcClient(MerchantService, `127.0.0.1:${mg}`));
    const recon = createGrpcClient(ReconService, `127.0.0.1:${rg}`);
    this.closers.push(payment.close, ...merchants.map((m) => m.close), recon.close);
    this.paymentClient = payment.client;
    this.merchantClients = merchants.map((m) => m.client);
    this.merchantClient = this.merchantClients[0]!;
    this.reconClient = recon.client;
    this.redis = o.redisClusterNodes
      ? new Cluster(
          o.redisClusterNodes.split(",").map((hp) => ({ host: hp.slice(0, hp.lastIndexOf(":")), port: Number(hp.slice(hp.lastIndexOf(":") + 1)) })),
          { redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 1000 } },
        )
      : new Redis(o.redisUrl, { maxRetriesPerRequest: 1, commandTimeout: 1000, lazyConnect: false });
    this.redis.on("error", () => {});
  }

  get processes(): ManagedProcess[] {
    return [...this.payments, ...this.merchants, this.recon].filter((p) => p !== undefined);
  }

  /** A pool on one of the two databases, straight to the server (never through a service). */
  pool(which: "payment" | "merchant"): mysql.Pool {
    let pool = this.pools.get(which);
    if (!pool) {
      const url = databaseUrl(this.options.mysqlServerUrl, which === "payment" ? this.paymentDb : this.merchantDb);
      pool = mysql.createPool({ uri: url, connectionLimit: 2, supportBigNumbers: true, bigNumberStrings: true, connectTimeout: 2000 });
      // A pooled connection broken by a database restart is dropped; the next query opens another.
      pool.on("connection", (conn) => conn.on("error", () => {}));
      this.pools.set(which, pool);
    }
    return pool;
  }

  async query<R>(which: "payment" | "merchant", sql: string, params: unknown[] = []): Promise<R[]> {
    const [rows] = await this.pool(which).query(sql, params);
    return rows as R[];
  }

  get leaseKey(): string {
    return `{${this.redisPrefix}}:settlement-lease`;
  }

  /** The token of the settlement lease, or null when no settlement is running. */
  async leaseToken(): Promise<string | null> {
    return this.redis.get(this.leaseKey);
  }

  /**
   * Waits until a settlement run starts (a lease token other than `stale` appears); resolves to
   * the token, or undefined when none started within the time given.
   */
  async nextSettlement(stale: string | null, withinMs: number): Promise<string | undefined> {
    const until = Date.now() + withinMs;
    while (Date.now() < until) {
      const token = await this.redis.get(this.leaseKey).catch(() => null);
      if (token !== null && token !== stale) return token;
    }
    return undefined;
  }

  /** Every process exit the test did not cause. */
  crashes(): UnexpectedExit[] {
    return this.processes.flatMap((p) => p.crashes);
  }

  async close(): Promise<void> {
    for (const c of this.closers) c();
    this.redis?.disconnect();
    await Promise.all(this.processes.map((p) => p.stop(5_000)));
    for (const pool of this.pools.values()) await pool.end().catch(() => {});
    rmSync(this.reconDir, { recursive: true, force: true });
  }

  /** Removes the databases and keys; for a private server, the caller removes the server. */
  async dropStorage(sharedRedisUrl: string | undefined): Promise<void> {
    await dropDatabases(this.options.mysqlServerUrl, [this.paymentDb, this.merchantDb]).catch(() => {});
    if (sharedRedisUrl) await deleteRedisKeys(sharedRedisUrl, this.redisPrefix);
  }
}

// ---------------------------------------------------------------------------------------------
// Load

interface Acknowledged {
  type: "PAYMENT" | "WITHDRAWAL";
  salerId: string;
  amount: bigint;
  state: "SUCCESS" | "FAIL";
}

/**
 * Workers that pay and withdraw through the merchant's gRPC API until stopped. What the
 * merchant answered is kept: a SUCCESS or FAIL it returned is a promise the end state must keep.
 */
export class Load {
  readonly acknowledged = new Map<string, Acknowledged>();
  calls = 0;
  successes = 0;
  unknownAnswers = 0;
  noAnswer = 0;
  /** When each call that ended without SUCCESS or FAIL ended (ms since the epoch), and how. */
  readonly failures: { at: number; what: string }[] = [];
  private stopped = false;
  private paused = false;
  private inFlight = 0;
  private workers: Promise<void>[] = [];

  constructor(
    private readonly platform: FaultPlatform,
    private readonly seed: number,
    private readonly concurrency = 4,
  ) {}

  start(): void {
    this.workers = Array.from({ length: this.concurrency }, (_, i) => this.worker(i, Random.derive(this.seed, `worker${i}`)));
  }

  private async worker(index: number, rng: Random): Promise<void> {
    let oneOff = 0;
    while (!this.stopped) {
      if (this.paused) {
        await sleep(20);
        continue;
      }
      const pay = rng.next() < 0.7;
      // Some payments go to an account nothing else ever pays: a buffered credit of such an
      // account that Redis loses is not picked up by a later payment to the same account.
      const salerId = pay && rng.next() < 0.25 ? `once${index}x${oneOff++}` : ACCOUNTS[rng.int(0, ACCOUNTS.length - 1)]!;
      const amount = BigInt(pay ? rng.int(1, 5_000) : rng.int(1, 8_000));
      this.calls++;
      this.inFlight++;
      const merchants = this.platform.merchantClients.length > 0 ? this.platform.merchantClients : [this.platform.merchantClient];
      const merchant = merchants[index % merchants.length]!;
      try {
        const { order } = pay
          ? await merchant.pay({ salerId, totalFee: amount }, { timeoutMs: 10_000 })
          : await merchant.withdraw({ salerId, withdrawMoney: amount }, { timeoutMs: 10_000 });
        if (!order) throw new Error("merchant answered without an order");
        if (order.state === "SUCCESS" || order.state === "FAIL") {
          this.acknowledged.set(order.requestId, { type: pay ? "PAYMENT" : "WITHDRAWAL", salerId, amount, state: order.state });
          if (order.state === "SUCCESS") this.successes++;
        } else {
          this.unknownAnswers++;
          this.failures.push({ at: Date.now(), what: `${order.state}: ${order.responseMsg}` });
          await sleep(100);
        }
      } catch (err) {
        if (!(err instanceof ConnectError)) throw err;
        // The merchant is down, or failed before it could answer: nothing was promised.
        this.noAnswer++;
        this.failures.push({ at: Date.now(), what: `error ${err.code}: ${err.rawMessage}` });
        await sleep(100);
      } finally {
        this.inFlight--;
      }
    }
  }

  /** Stops sending new orders; resolves when none is in flight. */
  async pause(): Promise<void> {
    this.paused = true;
    while (this.inFlight > 0) await sleep(5);
  }

  resume(): void {
    this.paused = false;
  }

  /** Waits until one more order succeeds end to end than `after`; false if none within the time given. */
  async successAfter(after: number, withinMs: number): Promise<boolean> {
    const until = Date.now() + withinMs;
    while (this.successes <= after) {
      if (Date.now() > until) return false;
      await sleep(20);
    }
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.workers);
  }
}

/** Reads every account's settled balance now and then, straight from the payment database. */
export class BalanceSampler {
  samples = 0;
  negative: string[] = [];
  minimum: bigint | undefined;
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly platform: FaultPlatform) {}

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          const rows = await this.platform.query<{ saler_id: string; balance: string }>("payment", "SELECT saler_id, balance FROM accounts");
          this.samples++;
          for (const r of rows) {
            const b = BigInt(r.balance);
            if (this.minimum === undefined || b < this.minimum) this.minimum = b;
            if (b < 0n && this.negative.length < 20) this.negative.push(`${r.saler_id}=${b}`);
          }
        } catch {
          // The database is down or not created yet.
        }
        await sleep(100);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

// ---------------------------------------------------------------------------------------------
// Final accounting

export interface FaultReport {
  scenario: string;
  seed: number;
  crashPoints: number;
  crashPointsByKind: Record<string, number>;
  /** Kills that left the settlement lease behind: the process died inside a settlement run. */
  killedInSettlement: number;
  restarts: number;
  restartsSurvived: number;
  calls: number;
  acknowledged: number;
  paymentsRecorded: number;
  withdrawalsSucceeded: number;
  /**
   * Credits missing: acknowledged payments the payment system has no success for, recorded
   * payments still uncredited at the end, and accounts holding less than they are owed.
   */
  creditsLost: number;
  amountLost: bigint;
  /** Credits applied twice: settlement-ledger credits beyond the rows stamped, and accounts holding more than they are owed. */
  creditsDoubled: number;
  amountDoubled: bigint;
  stuckOrders: number;
  processesCrashed: number;
  balanceSamples: number;
  negativeBalances: number;
  /** Reconciliation all F000 and the audit all SUCCESS. */
  reconBalanced: boolean;
  /** Every broken promise, described (at most a few dozen). */
  problems: string[];
  notes: string[];
}

export function describeReport(r: FaultReport): string {
  const kinds = Object.entries(r.crashPointsByKind)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  return [
    `[fault report] ${r.scenario} seed=${r.seed}`,
    `  crash points tried ${r.crashPoints} (${kinds}; inside a settlement run ${r.killedInSettlement})`,
    `  restarts ${r.restarts}, survived ${r.restartsSurvived}`,
    `  calls ${r.calls}, acknowledged ${r.acknowledged}, payments recorded ${r.paymentsRecorded}, withdrawals succeeded ${r.withdrawalsSucceeded}`,
    `  credits lost ${r.creditsLost} (${r.amountLost} fen), credits doubled ${r.creditsDoubled} (${r.amountDoubled} fen), stuck orders ${r.stuckOrders}`,
    `  processes crashed unexpectedly ${r.processesCrashed}, balance samples ${r.balanceSamples} (negative ${r.negativeBalances}), reconciliation ${r.reconBalanced ? "all F000, audit all SUCCESS" : "NOT balanced"}`,
    ...r.notes.map((n) => `  note: ${n}`),
    ...r.problems.slice(0, 30).map((p) => `  PROBLEM: ${p}`),
  ].join("\n");
}

type PaymentRow = { request_id: string; response_id: string; saler_id: string; total_fee: string; response_code: string; settlement_id: string | null };
type WithdrawalRow = { request_id: string; response_id: string; saler_id: string; withdraw_money: string; response_code: string };
type MerchantRow = { request_id: string; order_type: "PAYMENT" | "WITHDRAWAL"; saler_id: string; amount: string; state: string; response_id: string | null };

async function retrying<T>(what: string, attempts: number, fn: () => Promise<T>): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw new Error(`${what} failed ${attempts} times: ${err instanceof Error ? err.message : String(err)}`);
      await sleep(500);
    }
  }
}

/**
 * Ends a run: stops the load, lets the merchant resolve its open orders, settles, reconciles,
 * and compares what was promised with what the databases hold.
 */
export async function finishRun(
  platform: FaultPlatform,
  load: Load,
  sampler: BalanceSampler,
  fault: { crashPointsByKind: Record<string, number>; killedInSettlement: number; restarts: number; restartsSurvived: number; notes?: string[] },
  options: { resolveBy: "rpc" | "schedule" } = { resolveBy: "rpc" },
): Promise<FaultReport> {
  await load.stop();
  trace("load stopped");
  const problems: string[] = [];
  const notes = [...(fault.notes ?? [])];
  for (const p of platform.processes) if (!p.running) await p.start();

  // Open orders: INIT ones left by a killed merchant, UNKNOWN ones from calls that broke. Those
  // the payment system never recorded are closed once older than CLOSE_UNKNOWN_AFTER_SECONDS.
  const openCount = async () =>
    Number((await platform.query<{ n: string }>("merchant", "SELECT COUNT(*) AS n FROM merchant_orders WHERE state IN ('INIT','UNKNOWN')"))[0]!.n);
  const openAtEnd = await retrying("counting open orders", 20, openCount);
  notes.push(`open merchant orders when the load stopped: ${openAtEnd}`);
  if (options.resolveBy === "schedule") {
    // The merchant's own scheduled resolver, nothing else, closes them.
    const until = Date.now() + 60_000;
    while ((await retrying("counting open orders", 20, openCount)) > 0 && Date.now() < until) await sleep(500);
  } else {
    await sleep(4_000);
    for (let i = 0; i < 20 && (await openCount()) > 0; i++) {
      await retrying("ResolveUnknownOrders", 20, () => platform.merchantClient.resolveUnknownOrders({ initOlderThanSeconds: 1 }, { timeoutMs: 60_000 }));
      if ((await openCount()) > 0) await sleep(1_000);
    }
  }
  const stuckOrders = await openCount();
  trace(`open orders resolved (${stuckOrders} left)`);
  if (stuckOrders > 0) problems.push(`${stuckOrders} merchant orders still INIT or UNKNOWN after resolution`);

  // The scheduled settlement alone must credit every recorded payment: nobody asks it for a
  // full sweep, and periodic sweeps are off (SETTLE_SWEEP_EVERY), so credits the buffer lost
  // come back only because the payment system noticed the loss.
  const pendingCount = async () =>
    Number((await platform.query<{ n: string }>("payment", "SELECT COUNT(*) AS n FROM payment_orders WHERE settlement_id IS NULL"))[0]!.n);
  const settleBy = Date.now() + 30_000;
  while ((await retrying("counting pending credits", 20, pendingCount)) > 0 && Date.now() < settleBy) await sleep(250);
  const [uncredited] = await platform.query<{ n: string; amount: string | null }>(
    "payment",
    "SELECT COUNT(*) AS n, CAST(SUM(total_fee) AS CHAR) AS amount FROM payment_orders WHERE settlement_id IS NULL",
  );
  let creditsLost = Number(uncredited!.n);
  let amountLost = BigInt(uncredited!.amount ?? "0");
  if (creditsLost > 0) problems.push(`${creditsLost} payments (${amountLost} fen) still uncredited 30 s after the load stopped`);
  // Settle asked for by hand now finds nothing left to credit.
  const extra = await retrying("Settle", 60, async () => {
    const r = await platform.paymentClient.settle({}, { timeoutMs: 30_000 });
    if (!r.ran) throw new Error("another settler holds the lease");
    return r;
  });
  if (creditsLost === 0 && extra.creditsApplied !== 0n) {
    problems.push(`a settlement after every credit was applied credited ${extra.creditsApplied} payments (${extra.amountSettled} fen) more`);
  }
  trace("settled");
  const recon = await retrying("Reconcile", 10, () =>
    platform.reconClient.reconcile({ resolveUnknown: true, cutoffTime: platform.clock.current() }, { timeoutMs: 60_000 }),
  );
  const run = recon.run as Run;
  // The audit: each account's balance against the merchant's own successful orders.
  const audit = (await retrying("Audit", 10, () => platform.reconClient.audit({ cutoffTime: platform.clock.current() }, { timeoutMs: 60_000 })))
    .run as Run;
  trace("reconciled and audited");

  const payments = await platform.query<PaymentRow>(
    "payment",
    "SELECT request_id, response_id, saler_id, CAST(total_fee AS CHAR) AS total_fee, response_code, CAST(settlement_id AS CHAR) AS settlement_id FROM payment_orders",
  );
  const withdrawals = await platform.query<WithdrawalRow>(
    "payment",
    "SELECT request_id, response_id, saler_id, CAST(withdraw_money AS CHAR) AS withdraw_money, response_code FROM withdrawal_orders",
  );
  const accounts = await platform.query<{ saler_id: string; balance: string }>("payment", "SELECT saler_id, CAST(balance AS CHAR) AS balance FROM accounts");
  const [ledger] = await platform.query<{ credits: string | null; amount: string | null }>(
    "payment",
    "SELECT CAST(SUM(credits) AS CHAR) AS credits, CAST(SUM(amount) AS CHAR) AS amount FROM settlements",
  );
  const merchantOrders = await platform.query<MerchantRow>(
    "merchant",
    "SELECT request_id, order_type, saler_id, CAST(amount AS CHAR) AS amount, state, response_id FROM merchant_orders",
  );

  let creditsDoubled = 0;
  let amountDoubled = 0n;

  // The bank invariant, account by account, from the payment system's own orders.
  const owed = new Map<string, bigint>();
  const add = (a: string, v: bigint) => owed.set(a, (owed.get(a) ?? 0n) + v);
  let pendingRows = 0;
  let stampedRows = 0;
  let stampedAmount = 0n;
  const pending = new Map<string, bigint>();
  for (const p of payments) {
    if (p.response_code !== "SUCCESS") continue;
    add(p.saler_id, BigInt(p.total_fee));
    if (p.settlement_id === null) {
      pendingRows++;
      pending.set(p.saler_id, (pending.get(p.saler_id) ?? 0n) + BigInt(p.total_fee));
    } else {
      stampedRows++;
      stampedAmount += BigInt(p.total_fee);
    }
  }
  for (const w of withdrawals) if (w.response_code === "SUCCESS") add(w.saler_id, -BigInt(w.withdraw_money));
  const balances = new Map(accounts.map((a) => [a.saler_id, BigInt(a.balance)]));
  for (const salerId of new Set([...owed.keys(), ...balances.keys()])) {
    const expected = owed.get(salerId) ?? 0n;
    const actual = (balances.get(salerId) ?? 0n) + (pending.get(salerId) ?? 0n);
    if (actual < expected) {
      creditsLost++;
      amountLost += expected - actual;
      problems.push(`${salerId}: balance ${balances.get(salerId) ?? 0n} + pending ${pending.get(salerId) ?? 0n} < payments − withdrawals ${expected}`);
    } else if (actual > expected) {
      creditsDoubled++;
      amountDoubled += actual - expected;
      problems.push(`${salerId}: balance ${balances.get(salerId) ?? 0n} + pending ${pending.get(salerId) ?? 0n} > payments − withdrawals ${expected}`);
    }
    if ((balances.get(salerId) ?? 0n) < 0n) problems.push(`${salerId}: negative balance ${balances.get(salerId)}`);
  }
  if (pendingRows > 0) problems.push(`${pendingRows} payments still uncredited after a settlement asked for by hand`);
  // The settlements ledger credits each stamped row once: more credits than rows is a double.
  const ledgerCredits = BigInt(ledger?.credits ?? "0");
  const ledgerAmount = BigInt(ledger?.amount ?? "0");
  if (ledgerCredits > BigInt(stampedRows)) {
    creditsDoubled += Number(ledgerCredits - BigInt(stampedRows));
    amountDoubled += ledgerAmount - stampedAmount;
    problems.push(`settlements credited ${ledgerCredits} payments (${ledgerAmount} fen), but ${stampedRows} (${stampedAmount} fen) are stamped`);
  } else if (ledgerCredits < BigInt(stampedRows) || ledgerAmount !== stampedAmount) {
    problems.push(`settlements credited ${ledgerCredits} payments (${ledgerAmount} fen), but ${stampedRows} (${stampedAmount} fen) are stamped`);
  }

  // What the merchant promised the load must hold in the payment system.
  const paymentById = new Map(payments.map((p) => [p.request_id, p]));
  const withdrawalById = new Map(withdrawals.map((w) => [w.request_id, w]));
  for (const [requestId, ack] of load.acknowledged) {
    const row = ack.type === "PAYMENT" ? paymentById.get(requestId) : withdrawalById.get(requestId);
    const amount = row ? BigInt("total_fee" in row ? row.total_fee : row.withdraw_money) : undefined;
    if (ack.state === "SUCCESS") {
      if (!row || row.response_code !== "SUCCESS" || amount !== ack.amount || row.saler_id !== ack.salerId) {
        if (ack.type === "PAYMENT") creditsLost++;
        problems.push(`acknowledged ${ack.type} ${requestId} (${ack.salerId}, ${ack.amount}) is ${row ? `${row.response_code} ${amount}` : "missing"} in the payment system`);
      }
    } else if (row && row.response_code === "SUCCESS") {
      problems.push(`${ack.type} ${requestId} answered FAIL to the merchant's caller is SUCCESS in the payment system`);
    }
  }

  // Both sides agree order by order: merchant SUCCESS ⇔ payment SUCCESS, same amount and ids.
  const paymentSuccess = new Map<string, { type: string; salerId: string; amount: bigint; responseId: string }>();
  for (const p of payments) if (p.response_code === "SUCCESS") paymentSuccess.set(p.request_id, { type: "PAYMENT", salerId: p.saler_id, amount: BigInt(p.total_fee), responseId: p.response_id });
  for (const w of withdrawals) if (w.response_code === "SUCCESS") paymentSuccess.set(w.request_id, { type: "WITHDRAWAL", salerId: w.saler_id, amount: BigInt(w.withdraw_money), responseId: w.response_id });
  const merchantSuccess = new Set<string>();
  for (const m of merchantOrders) {
    if (m.state !== "SUCCESS") continue;
    merchantSuccess.add(m.request_id);
    const p = paymentSuccess.get(m.request_id);
    if (!p || p.type !== m.order_type || p.amount !== BigInt(m.amount) || p.salerId !== m.saler_id || p.responseId !== m.response_id) {
      problems.push(`merchant SUCCESS ${m.order_type} ${m.request_id} (${m.saler_id}, ${m.amount}) has ${p ? `${p.type} ${p.amount} ${p.responseId}` : "no success"} in the payment system`);
      if (!p && m.order_type === "PAYMENT") creditsLost++;
    }
  }
  for (const [requestId, p] of paymentSuccess) {
    if (!merchantSuccess.has(requestId)) problems.push(`payment system SUCCESS ${p.type} ${requestId} (${p.salerId}, ${p.amount}) is not SUCCESS at the merchant`);
  }

  // Reconciliation over the same data: every order F000, and as many as each side holds.
  const expectedRows = {
    [ReconOrderType.PAYMENT]: BigInt(payments.filter((p) => p.response_code === "SUCCESS").length),
    [ReconOrderType.WITHDRAWAL]: BigInt(withdrawals.filter((w) => w.response_code === "SUCCESS").length),
  } as Record<number, bigint>;
  for (const d of run.diffs) {
    // An order type the load never sends (none but payments and withdrawals) has no rows.
    const expected = expectedRows[d.orderType] ?? 0n;
    if (d.f113Count !== 0n || d.f114Count !== 0n || d.f115Count !== 0n || d.f000Count !== expected) {
      problems.push(
        `reconciliation ${ReconOrderType[d.orderType]}: F000 ${d.f000Count} of ${expected}, F113 ${d.f113Count}, F114 ${d.f114Count}, F115 ${d.f115Count}`,
      );
    }
  }
  for (const type of [ReconOrderType.PAYMENT, ReconOrderType.WITHDRAWAL]) {
    if (!run.diffs.some((d) => d.orderType === type)) problems.push(`reconciliation compared no ${ReconOrderType[type]} orders`);
  }
  const a = audit.audit;
  if (!audit.balanced || !a || a.fail !== 0n || a.success !== a.accounts || a.accounts !== BigInt(balances.size)) {
    problems.push(`audit: ${a?.success} of ${a?.accounts} accounts SUCCESS, ${a?.fail} FAIL (the payment system has ${balances.size} accounts)`);
  }

  const crashed = platform.crashes();
  for (const c of crashed) problems.push(`${c.process} exited by itself (code ${c.code}, signal ${c.signal}):\n${c.output.slice(-2000)}`);
  if (sampler.negative.length > 0) problems.push(`negative balances sampled: ${sampler.negative.join(", ")}`);

  return {
    scenario: platform.options.scenario,
    seed: platform.options.seed,
    crashPoints: Object.values(fault.crashPointsByKind).reduce((a, b) => a + b, 0),
    crashPointsByKind: fault.crashPointsByKind,
    killedInSettlement: fault.killedInSettlement,
    restarts: fault.restarts,
    restartsSurvived: fault.restartsSurvived,
    calls: load.calls,
    acknowledged: load.acknowledged.size,
    paymentsRecorded: payments.length,
    withdrawalsSucceeded: withdrawals.filter((w) => w.response_code === "SUCCESS").length,
    creditsLost,
    amountLost,
    creditsDoubled,
    amountDoubled,
    stuckOrders,
    processesCrashed: crashed.length,
    balanceSamples: sampler.samples,
    negativeBalances: sampler.negative.length,
    reconBalanced: run.balanced && audit.balanced,
    problems,
    notes,
  };
}
