/**
 * TLS by configuration. A service with `<PREFIX>_TLS_CERT` and `<PREFIX>_TLS_KEY` (PEM files)
 * serves gRPC and its HTTP gateway over TLS; a client of it trusts the CA in `<PREFIX>_TLS_CA`
 * (e.g. PAYMENT_TLS_CA for the merchant's and reconciliation's calls to the payment system).
 * Without them everything is plaintext, which suits loopback and the embedded default.
 */
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import type { EnvReader } from "../runtime/config.js";
import { ConfigError } from "../errors.js";

export interface ServerTls {
  cert: Buffer;
  key: Buffer;
}

function readPem(variable: string, path: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (err) {
    throw new ConfigError(variable, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
  }
  if (!pem.toString("latin1").includes("-----BEGIN ")) throw new ConfigError(variable, `${path} is not a PEM file`);
  return pem;
}

export function readServerTls(env: EnvReader, prefix: string): ServerTls | undefined {
  const certFile = env.optional(`${prefix}_TLS_CERT`);
  const keyFile = env.optional(`${prefix}_TLS_KEY`);
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined) throw new ConfigError(`${prefix}_TLS_CERT`, `is required with ${prefix}_TLS_KEY`);
  if (keyFile === undefined) throw new ConfigError(`${prefix}_TLS_KEY`, `is required with ${prefix}_TLS_CERT`);
  return { cert: readPem(`${prefix}_TLS_CERT`, certFile), key: readPem(`${prefix}_TLS_KEY`, keyFile) };
}

/** The CA a client trusts for the service `prefix`; absent for plaintext. */
export function readTlsCa(env: EnvReader, prefix: string): Buffer | undefined {
  const file = env.optional(`${prefix}_TLS_CA`);
  return file === undefined ? undefined : readPem(`${prefix}_TLS_CA`, file);
}

export function grpcServerCredentials(tls: ServerTls | undefined): grpc.ServerCredentials {
  return tls ? grpc.ServerCredentials.createSsl(null, [{ cert_chain: tls.cert, private_key: tls.key }], false) : grpc.ServerCredentials.createInsecure();
}

export function grpcChannelCredentials(ca: Buffer | undefined): grpc.ChannelCredentials {
  return ca ? grpc.credentials.createSsl(ca) : grpc.credentials.createInsecure();
}
