import { EnvReader, readDatabaseConfig, readGrpcAddress, readListen, type ListenConfig } from "../shared/runtime/config.js";
import { readCron } from "../shared/runtime/cron.js";
import type { DatabaseConfig } from "../shared/storage/database.js";
import { readOperatorToken } from "../shared/auth/authentication.js";
import { readCallLimits, type CallLimits } from "../shared/rpc/callPolicy.js";
import { readServing, type ServingConfig } from "../shared/rpc/serving.js";
import { ConfigError } from "../shared/errors.js";
import { parseKey, parseMerchantId, type MerchantCredentials } from "../shared/auth/signing.js";
import { readServerTls, readTlsCa, type ServerTls } from "../shared/rpc/tls.js";

export interface MerchantConfig {
  listen: ListenConfig;
  database: DatabaseConfig;
  /**
   * The payment system's gRPC endpoint: host:port, a list of instances ip:port,ip:port,... or
   * dns:name:port; a list or a DNS name is balanced round-robin.
   */
  paymentAddress: string;
  timeZone: string;
  callTimeoutMs: number;
  /** node-schedule cron rule of the job that resolves UNKNOWN orders; "off" disables it. */
  resolveCron: string;
  resolveInitAfterSeconds: number;
  closeUnknownAfterSeconds: number;
  exportBatchSize: number;
  maxMessageBytes: number;
  /** MERCHANT_ID and MERCHANT_KEY: every call to the payment system is signed with them. */
  signing?: MerchantCredentials | undefined;
  /** PAYMENT_TLS_CA: calls to the payment system use TLS and trust this CA. */
  paymentTlsCa?: Buffer | undefined;
  /** OPERATOR_TOKEN: Simulate and ResolveUnknownOrders then need "authorization: Bearer <token>". */
  operatorToken?: string | undefined;
  tls?: ServerTls | undefined;
  callLimits: CallLimits;
  /** LOG_CALLS and CORS_ALLOWED_ORIGINS (serving.ts). */
  serving: ServingConfig;
}

export function readMerchantConfig(env = new EnvReader()): MerchantConfig {
  return {
    listen: readListen(env, "MERCHANT", 50052, 8082),
    database: readDatabaseConfig(env, "MERCHANT", "merchant"),
    paymentAddress: readGrpcAddress(env, "PAYMENT_ADDRESS", "127.0.0.1:50051"),
    timeZone: env.timeZone("BUSINESS_TIME_ZONE", "Asia/Shanghai"),
    callTimeoutMs: env.int("PAYMENT_CALL_TIMEOUT_MS", 5000, 10, 600_000),
    resolveCron: readCron(env, "RESOLVE_CRON", "*/15 * * * * *"),
    resolveInitAfterSeconds: env.int("RESOLVE_INIT_AFTER_SECONDS", 30, 1, 86_400),
    closeUnknownAfterSeconds: env.int("CLOSE_UNKNOWN_AFTER_SECONDS", 60, 1, 86_400 * 30),
    exportBatchSize: env.int("EXPORT_BATCH_SIZE", 2000, 1, 100_000),
    maxMessageBytes: env.int("MAX_MESSAGE_BYTES", 4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    signing: readSigning(env),
    paymentTlsCa: readTlsCa(env, "PAYMENT"),
    operatorToken: readOperatorToken(env),
    tls: readServerTls(env, "MERCHANT"),
    callLimits: readCallLimits(env),
    serving: readServing(env),
  };
}

function readSigning(env: EnvReader): MerchantCredentials | undefined {
  const id = env.optional("MERCHANT_ID");
  const key = env.optional("MERCHANT_KEY");
  if (id === undefined && key === undefined) return undefined;
  if (id === undefined) throw new ConfigError("MERCHANT_ID", "is required with MERCHANT_KEY");
  if (key === undefined) throw new ConfigError("MERCHANT_KEY", "is required with MERCHANT_ID");
  return { merchantId: parseMerchantId("MERCHANT_ID", id), key: parseKey("MERCHANT_KEY", key) };
}
