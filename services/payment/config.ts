import { EnvReader, readDatabaseConfig, readListen, type ListenConfig } from "../shared/runtime/config.js";
import { readCron } from "../shared/runtime/cron.js";
import type { DatabaseConfig } from "../shared/storage/database.js";
import { readOperatorToken } from "../shared/auth/authentication.js";
import { readCallLimits, type CallLimits } from "../shared/rpc/callPolicy.js";
import { readServing, type ServingConfig } from "../shared/rpc/serving.js";
import { parseMerchantKeys } from "../shared/auth/signing.js";
import { readServerTls, type ServerTls } from "../shared/rpc/tls.js";
import { readRedisTarget, type ClusterNode } from "../shared/storage/redisClient.js";

export interface PaymentConfig {
  listen: ListenConfig;
  database: DatabaseConfig;
  /** redis:// URL of the credit buffer; absent for the in-process buffer. */
  redisUrl: string | undefined;
  /**
   * REDIS_CLUSTER_NODES: the credit buffer is on a Redis Cluster reached through these seed nodes
   * (instead of REDIS_URL).
   */
  redisClusterNodes?: ClusterNode[] | undefined;
  /** Hash tag and prefix of every Redis key. */
  redisPrefix: string;
  timeZone: string;
  /** node-schedule cron rule (with seconds) of the settlement job; "off" disables it. */
  settleCron: string;
  settleChunkSize: number;
  settleSweepEvery: number;
  /**
   * How long a settler holds the settlement lease without renewing it (it renews after every
   * chunk). A settler that dies mid-run blocks settlement, in every process, until it expires.
   */
  settleLeaseMs: number;
  exportBatchSize: number;
  maxMessageBytes: number;
  /**
   * Merchant id → HMAC key (PAYMENT_MERCHANT_KEYS="merchant1:<hex or base64>,..."). When set,
   * Pay, Withdraw and QueryOrder accept only calls signed by one of them; absent, no signature
   * is asked for.
   */
  merchantKeys?: ReadonlyMap<string, Buffer> | undefined;
  /** How far a signed request_time may lie from the payment system's business time. */
  requestWindowSeconds: number;
  /**
   * How far ahead of the payment system's business time any request_time may lie (the clock skew
   * tolerated between merchant and payment system); earlier than 2000-01-01 is refused too.
   */
  requestTimeMaxAheadSeconds: number;
  /** OPERATOR_TOKEN: Settle then needs "authorization: Bearer <token>". */
  operatorToken?: string | undefined;
  tls?: ServerTls | undefined;
  callLimits: CallLimits;
  /** LOG_CALLS and CORS_ALLOWED_ORIGINS (serving.ts). */
  serving: ServingConfig;
}

export function readPaymentConfig(env = new EnvReader()): PaymentConfig {
  return {
    listen: readListen(env, "PAYMENT", 50051, 8081),
    database: readDatabaseConfig(env, "PAYMENT", "payment"),
    ...readRedisTarget(env),
    redisPrefix: env.string("PAYMENT_REDIS_PREFIX", "payment"),
    timeZone: env.timeZone("BUSINESS_TIME_ZONE", "Asia/Shanghai"),
    settleCron: readCron(env, "SETTLE_CRON", "*/5 * * * * *"),
    settleChunkSize: env.int("SETTLE_CHUNK_ACCOUNTS", 200, 1, 5000),
    settleSweepEvery: env.int("SETTLE_SWEEP_EVERY", 12, 1, 1_000_000),
    settleLeaseMs: env.int("SETTLE_LEASE_MS", 15_000, 500, 3_600_000),
    exportBatchSize: env.int("EXPORT_BATCH_SIZE", 2000, 1, 100_000),
    maxMessageBytes: env.int("MAX_MESSAGE_BYTES", 4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    merchantKeys: readMerchantKeys(env),
    requestWindowSeconds: env.int("PAYMENT_REQUEST_WINDOW_SECONDS", 300, 1, 86_400),
    requestTimeMaxAheadSeconds: env.int("PAYMENT_REQUEST_TIME_MAX_AHEAD_SECONDS", 300, 0, 3600),
    operatorToken: readOperatorToken(env),
    tls: readServerTls(env, "PAYMENT"),
    callLimits: readCallLimits(env),
    serving: readServing(env),
  };
}

function readMerchantKeys(env: EnvReader): Map<string, Buffer> | undefined {
  const text = env.optional("PAYMENT_MERCHANT_KEYS");
  return text === undefined ? undefined : parseMerchantKeys("PAYMENT_MERCHANT_KEYS", text);
}
