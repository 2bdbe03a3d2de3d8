/**
 * Test platform: real servers on loopback ports (port 0), on the embedded default (SQLite files
 * in a temporary folder, in-process buffer) and, when TEST_MYSQL_URL and TEST_REDIS_URL are set,
 * on MariaDB/MySQL and Redis with a fresh database and key prefix per platform.
 * REQUIRE_REAL_BACKENDS=1 (CI) turns missing real backends into a failure instead of a skip.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { pino } from "pino";
import type { Client } from "@connectrpc/connect";
import { PaymentService } from "../gen/payment/v1/payment_pb.js";
import { MerchantService } from "../gen/merchant/v1/merchant_pb.js";
import { OrderExportService } from "../gen/order/v1/order_pb.js";
import { createGrpcClient } from "../services/shared/rpc/grpcClient.js";
import { readPaymentConfig, type PaymentConfig } from "../services/payment/config.js";
import { readMerchantConfig, type MerchantConfig } from "../services/merchant/config.js";
import { EnvReader } from "../services/shared/runtime/config.js";
import { startPaymentSystem, type PaymentSystem } from "../services/payment/system.js";
import { startMerchantSystem, type MerchantSystem } from "../services/merchant/system.js";
import type { SettlementFaults } from "../services/payment/settlement.js";
import type { SenderFaults } from "../services/merchant/orderSender.js";
import { ReconService } from "../gen/recon/v1/recon_pb.js";
import { readReconConfig, type ReconConfig } from "../services/recon/config.js";
import { startReconSystem, type ReconSystem } from "../services/recon/system.js";
import { deleteRedisKeys, dropDatabases } from "./support/cleanup.js";

export interface Backend {
  name: "embedded" | "mariadb+redis";
  mysqlUrl?: string;
  redisUrl?: string;
}

export const silentLogger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

/** The backends the suites run on. */
export function backends(): Backend[] {
  const list: Backend[] = [{ name: "embedded" }];
  const mysqlUrl = process.env.TEST_MYSQL_URL;
  const redisUrl = process.env.TEST_REDIS_URL;
  if (mysqlUrl && redisUrl) list.push({ name: "mariadb+redis", mysqlUrl, redisUrl });
  else if (process.env.REQUIRE_REAL_BACKENDS === "1") {
    throw new Error("REQUIRE_REAL_BACKENDS=1 but TEST_MYSQL_URL and TEST_REDIS_URL are not both set");
  }
  return list;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
}

/** Storage for one system: a fresh MySQL database or SQLite file, removed by `drop`. */
export interface Store {
  mysqlUrl?: string;
  sqliteFile: string;
  drop(): Promise<void>;
}

export function freshStore(backend: Backend, system: string): Store {
  if (backend.mysqlUrl) {
    const url = new URL(backend.mysqlUrl);
    const name = uniqueName(`t_${system}`);
    url.pathname = `/${name}`;
    return {
      mysqlUrl: url.toString(),
      sqliteFile: "",
      drop: () => dropDatabases(backend.mysqlUrl!, [name]),
    };
  }
  const dir = mkdtempSync(join(tmpdir(), `${system}-`));
  return {
    sqliteFile: join(dir, `${system}.sqlite`),
    async drop() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const LOOPBACK = { host: "127.0.0.1", grpcPort: 0, httpPort: 0 };

/**
 * The configurations start from what each service reads from an empty environment, so that
 * in-process tests run with the production defaults; only where they listen and store, the
 * scheduled jobs (off: tests run them by call), the export page size (small, to cross pages), the
 * merchant's call timeout and recon's cut-off lag are the tests' own.
 */
export const NO_ENV = new EnvReader({});

export function paymentConfig(backend: Backend, store: Store, redisPrefix: string, overrides: Partial<PaymentConfig> = {}): PaymentConfig {
  return {
    ...readPaymentConfig(NO_ENV),
    listen: LOOPBACK,
    database: { mysqlUrl: store.mysqlUrl, sqliteFile: store.sqliteFile, poolSize: 32 },
    redisUrl: backend.redisUrl,
    redisPrefix,
    settleCron: "off",
    exportBatchSize: 500,
    ...overrides,
  };
}

export function merchantConfig(store: Store, paymentAddress: string, overrides: Partial<MerchantConfig> = {}): MerchantConfig {
  return {
    ...readMerchantConfig(NO_ENV),
    listen: LOOPBACK,
    database: { mysqlUrl: store.mysqlUrl, sqliteFile: store.sqliteFile, poolSize: 32 },
    paymentAddress,
    // Twice the production 5 s: suites share a small machine, and a Pay that times out leaves its
    // order UNKNOWN where the suite expects an answer.
    callTimeoutMs: 10_000,
    resolveCron: "off",
    exportBatchSize: 500,
    ...overrides,
  };
}

export function reconConfig(reconDir: string, merchantAddress: string, paymentAddress: string, overrides: Partial<ReconConfig> = {}): ReconConfig {
  return {
    ...readReconConfig(NO_ENV),
    listen: LOOPBACK,
    merchantAddress,
    paymentAddress,
    reconDir,
    inputDir: reconDir,
    // Runs compare everything answered so far: the tests' orders are seconds old at most.
    cutoffLagSeconds: 0,
    ...overrides,
  };
}

export interface Platform {
  backend: Backend;
  payment: PaymentSystem;
  merchant: MerchantSystem;
  recon: ReconSystem;
  reconDir: string;
  paymentClient: Client<typeof PaymentService>;
  merchantClient: Client<typeof MerchantService>;
  reconClient: Client<typeof ReconService>;
  /** order.v1.OrderExportService as the payment system and the merchant serve it. */
  paymentOrders: Client<typeof OrderExportService>;
  merchantOrders: Client<typeof OrderExportService>;
  redisPrefix: string;
  close(): Promise<void>;
}

export interface PlatformOptions {
  payment?: Partial<PaymentConfig>;
  merchant?: Partial<MerchantConfig>;
  recon?: Partial<ReconConfig>;
  settlementFaults?: SettlementFaults;
  senderFaults?: SenderFaults;
}

/** Payment, merchant and reconciliation systems on loopback, wired together, with fresh storage. */
export async function startPlatform(backend: Backend, options: PlatformOptions = {}): Promise<Platform> {
  const paymentStore = freshStore(backend, "payment");
  const merchantStore = freshStore(backend, "merchant");
  const redisPrefix = uniqueName("tp");
  const payment = await startPaymentSystem(
    paymentConfig(backend, paymentStore, redisPrefix, options.payment),
    silentLogger,
    options.settlementFaults ? { settlementFaults: options.settlementFaults } : {},
  );
  const merchant = await startMerchantSystem(
    merchantConfig(merchantStore, payment.server.grpcAddress, options.merchant),
    silentLogger,
    options.senderFaults ? { senderFaults: options.senderFaults } : {},
  );
  const reconDir = mkdtempSync(join(tmpdir(), "recon-"));
  const recon = await startReconSystem(
    reconConfig(reconDir, merchant.server.grpcAddress, payment.server.grpcAddress, options.recon),
    silentLogger,
  );
  const paymentClient = createGrpcClient(PaymentService, payment.server.grpcAddress);
  const merchantClient = createGrpcClient(MerchantService, merchant.server.grpcAddress);
  const reconClient = createGrpcClient(ReconService, recon.server.grpcAddress);
  const paymentOrders = createGrpcClient(OrderExportService, payment.server.grpcAddress);
  const merchantOrders = createGrpcClient(OrderExportService, merchant.server.grpcAddress);
  return {
    backend,
    payment,
    merchant,
    recon,
    reconDir,
    paymentClient: paymentClient.client,
    merchantClient: merchantClient.client,
    reconClient: reconClient.client,
    paymentOrders: paymentOrders.client,
    merchantOrders: merchantOrders.client,
    redisPrefix,
    async close() {
      for (const client of [paymentClient, merchantClient, reconClient, paymentOrders, merchantOrders]) client.close();
      await recon.close();
      rmSync(reconDir, { recursive: true, force: true });
      await merchant.close();
      await payment.close();
      await merchantStore.drop();
      await paymentStore.drop();
      if (backend.redisUrl) await deleteRedisKeys(backend.redisUrl, redisPrefix);
    },
  };
}
