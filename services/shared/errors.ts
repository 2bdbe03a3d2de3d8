import { Code, ConnectError } from "@connectrpc/connect";

/** A request field broke a rule: INVALID_ARGUMENT, with the field named first. */
export function invalidField(field: string, rule: string): ConnectError {
  return new ConnectError(`${field}: ${rule}`, Code.InvalidArgument);
}

/** A start-up setting is missing or malformed. */
export class ConfigError extends Error {
  constructor(readonly variable: string, rule: string) {
    super(`configuration ${variable}: ${rule}`);
    this.name = "ConfigError";
  }
}

/** True for a unique-key violation on MySQL/MariaDB/TiDB or SQLite. */
export function isDuplicateKeyError(err: unknown): boolean {
  const e = err as { code?: string; errno?: number } | null;
  if (!e) return false;
  return (
    e.code === "ER_DUP_ENTRY" ||
    e.errno === 1062 ||
    e.code === "SQLITE_CONSTRAINT_UNIQUE" ||
    e.code === "SQLITE_CONSTRAINT_PRIMARYKEY"
  );
}

/** True for errors a transaction may simply be retried after (deadlock, lock wait, busy). */
export function isRetryableTransactionError(err: unknown): boolean {
  const e = err as { code?: string; errno?: number } | null;
  if (!e) return false;
  return (
    e.code === "ER_LOCK_DEADLOCK" ||
    e.errno === 1213 ||
    e.code === "ER_LOCK_WAIT_TIMEOUT" ||
    e.errno === 1205 ||
    e.code === "SQLITE_BUSY"
  );
}

/** Network-level codes of a database that cannot be reached or went away mid-call. */
const UNREACHABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "PROTOCOL_CONNECTION_LOST"]);
/**
 * Server errors of a database that is there but not serving: too many connections (1040), a
 * Galera node not (yet) part of the primary component (1047), shutting down (1053), or the
 * connection gone (2006, 2013).
 */
const NOT_SERVING_ERRNOS = new Set([1040, 1047, 1053, 2006, 2013]);

/** True when the database could not be reached or stopped serving: the call may be repeated later. */
export function isDatabaseUnavailableError(err: unknown): boolean {
  const e = err as { code?: string; errno?: number; name?: string; fatal?: boolean } | null;
  if (!e || typeof e !== "object") return false;
  if (e.name === "KnexTimeoutError") return true; // no pooled connection could be had in time
  if (typeof e.code === "string" && UNREACHABLE_CODES.has(e.code)) return true;
  return typeof e.errno === "number" && NOT_SERVING_ERRNOS.has(e.errno);
}

/**
 * The error a client sees. ConnectErrors pass through; lock contention that outlasted its retries
 * (contention.ts) is ABORTED, which tells the caller that nothing was done and the call may be
 * repeated; a database that cannot be reached or is not serving (a killed or isolated node) is
 * UNAVAILABLE, whose outcome the caller learns by repeating the call (every write is idempotent by
 * request_id); anything else (SQL, file system, bugs) becomes INTERNAL with a generic message, so
 * SQL text, paths and stacks never leave the process.
 */
export function toClientError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isRetryableTransactionError(err)) return new ConnectError("the database is busy (lock contention); retry", Code.Aborted);
  if (isDatabaseUnavailableError(err)) return new ConnectError("the database is unavailable; retry", Code.Unavailable);
  return new ConnectError("internal error", Code.Internal);
}
