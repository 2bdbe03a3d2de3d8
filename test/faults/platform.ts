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
import mysql from "mysql2/promise";
import { Cluster, Redis } from "ioredis";
import type { Client } from "@connectrpc/connect";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import { createGrpcClient } from "../../services/shared/rpc/grpcClient.js";
import { BusinessClock } from "../../services/shared/orders/time.js";
import { uniqueName } from "../harness.js";
import { databaseUrl, freePort, serviceProcess, type ManagedProcess, type UnexpectedExit } from "./processes.js";
import { deleteRedisKeys, dropDatabases } from "../support/cleanup.js";

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
