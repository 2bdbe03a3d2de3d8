import { EnvReader, readGrpcAddress, readListen, type ListenConfig } from "../shared/config.js";
import { readOperatorToken } from "../shared/authentication.js";
import { readCallLimits, type CallLimits } from "../shared/callPolicy.js";
import { readServerTls, readTlsCa, type ServerTls } from "../shared/tls.js";

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
  callLimits?: CallLimits | undefined;
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
    timeZone: env.timeZone("BUSINESS_TIME_ZONE", "Asia/Shanghai"),
    maxMessageBytes: env.int("MAX_MESSAGE_BYTES", 4 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    operatorToken: readOperatorToken(env),
    tls: readServerTls(env, "RECON"),
    merchantTlsCa: readTlsCa(env, "MERCHANT"),
    paymentTlsCa: readTlsCa(env, "PAYMENT"),
    callLimits: readCallLimits(env),
  };
}
