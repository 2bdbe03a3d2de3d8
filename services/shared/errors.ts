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

/**
 * The error a client sees. ConnectErrors pass through; lock contention that outlasted its retries
 * (contention.ts) is ABORTED, which tells the caller that nothing was done and the call may be
 * repeated; anything else (SQL, file system, bugs) becomes INTERNAL with a generic message, so
 * SQL text, paths and stacks never leave the process.
 */
export function toClientError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isRetryableTransactionError(err)) return new ConnectError("the database is busy (lock contention); retry", Code.Aborted);
  return new ConnectError("internal error", Code.Internal);
}
