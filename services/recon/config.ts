import { EnvReader, readGrpcAddress, readListen, type ListenConfig } from "../shared/runtime/config.js";
import { readOperatorToken } from "../shared/auth/authentication.js";
import { readCallLimits, type CallLimits } from "../shared/rpc/callPolicy.js";
import { readServing, type ServingConfig } from "../shared/rpc/serving.js";
import { readServerTls, readTlsCa, type ServerTls } from "../shared/rpc/tls.js";
import { ConfigError } from "../shared/errors.js";
import { availableParallelism } from "node:os";

export interface ReconConfig {
  listen: ListenConfig;
  merchantAddress: string;
  paymentAddress: string;
  /** The payment system's reconciliation directory: every run's files and summary go here. */
  reconDir: string;
  /** Files handed in by path must lie under this directory. */
  inputDir: string;
  /** A run without a cut-off compares orders answered at least this many seconds ago. */
  cutoffLagSeconds: number;
  /**
   * RECON_MEMORY_LIMIT (default 512MB): what the comparison engine (DuckDB) may add to the
   * service's memory (its buffer pool gets 60 % of it, see engine.ts);
   * beyond it, its sorts and joins spill to files under the reconciliation directory.
   */
  memoryLimit: string;
  /** RECON_THREADS (default: the number of cores): the engine's worker threads. */
  threads: number;
  timeZone: string;
  maxMessageBytes: number;
  /**
   * OPERATOR_TOKEN: the runs (Reconcile, ReconcileFiles, Audit, AuditFiles) then need
   * "authorization: Bearer <token>", and the reconciliation sends it to the merchant system.
   */
  operatorToken?: string | undefined;
  tls?: ServerTls | undefined;
  /** MERCHANT_TLS_CA and PAYMENT_TLS_CA: calls to those systems use TLS and trust these CAs. */
  merchantTlsCa?: Buffer | undefined;
  paymentTlsCa?: Buffer | undefined;
  callLimits: CallLimits;
  /** LOG_CALLS and CORS_ALLOWED_ORIGINS (serving.ts). */
  serving: ServingConfig;
}

export function readReconConfig(env = new EnvReader()): ReconConfig {
  const reconDir = env.string("RECON_DIR", "data/reconciliation");
  return {
    listen: readListen(env, "RECON", 50053, 8083),
    merchantAddress: env.host("MERCHANT_ADDRESS", "127.0.0.1:50052"),
    paymentAddress: readGrpcAddress(env, "PAYMENT_ADDRESS", "127.0.0.1:50051"),
    reconDir,
    inputDir: env.string("RECON_INPUT_DIR", reconDir),
    cutoffLagSeconds: env.int("RECON_CUTOFF_LAG_SECONDS", 5, 0, 86_400),
    memoryLimit: readMemoryLimit(env),
    threads: env.int("RECON_THREADS", availableParallelism(), 1, 1024),
    timeZone: env.timeZone("BUSINESS_TIME_ZONE", "Asia/Shanghai"),
    maxMessageBytes: env.int("MAX_MESSAGE_BYTES", 4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    operatorToken: readOperatorToken(env),
    tls: readServerTls(env, "RECON"),
    merchantTlsCa: readTlsCa(env, "MERCHANT"),
    paymentTlsCa: readTlsCa(env, "PAYMENT"),
    callLimits: readCallLimits(env),
    serving: readServing(env),
  };
}

/** RECON_MEMORY_LIMIT: a size such as 512MB, 2GB or 256MiB (at least 64MB). */
function readMemoryLimit(env: EnvReader): string {
  const raw = env.string("RECON_MEMORY_LIMIT", "512MB").trim();
  const m = /^(\d+)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i.exec(raw);
  if (!m) throw new ConfigError("RECON_MEMORY_LIMIT", `must be a size such as 512MB or 2GB, got "${raw}"`);
  const unit = m[2]!.toUpperCase();
  const scale = { KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 }[unit]!;
  if (Number(m[1]) * scale < 64e6) throw new ConfigError("RECON_MEMORY_LIMIT", `must be at least 64MB, got "${raw}"`);
  return `${m[1]}${m[2]}`;
}
