/**
 * Opens a service's own database through Knex: MySQL-compatible (mysql2) when a mysql:// URL is
 * configured, else an embedded SQLite file (better-sqlite3). Migrations are applied on open.
 * Integers come back as bigint on SQLite and as strings on MySQL; `toFen` reads either.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import knexFactory, { type Knex } from "knex";
import mysql from "mysql2/promise";
import { CONTENTION_POLICY, retryOnContention } from "./contention.js";

export interface DatabaseConfig {
  /** mysql://user:pass@host:port/database; absent for the embedded SQLite file. */
  mysqlUrl?: string | undefined;
  /** Path of the SQLite file, or ":memory:". */
  sqliteFile: string;
  /** Connection pool size on MySQL. */
  poolSize: number;
}

export interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

export type Dialect = "mysql" | "sqlite";

export interface Database {
  knex: Knex;
  dialect: Dialect;
  close(): Promise<void>;
}

async function ensureMysqlDatabase(url: URL): Promise<void> {
  const name = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`database name in MySQL URL must be [A-Za-z0-9_]+, got "${name}"`);
  const server = new URL(url);
  server.pathname = "/";
  const conn = await mysql.createConnection(server.toString());
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } finally {
    await conn.end();
  }
}

// compileSqlOnError: false (both dialects): a failed statement's error keeps its own code and
// carries the SQL with placeholders, not the bound values. Knex would otherwise format the
// values into the message, and it fails on a bigint value for SQLite, replacing a duplicate key
// error with a TypeError.
export async function openDatabase(config: DatabaseConfig, migrations: Record<string, Migration>): Promise<Database> {
  let knex: Knex;
  let dialect: Dialect;
  if (config.mysqlUrl) {
    const url = new URL(config.mysqlUrl);
    await ensureMysqlDatabase(url);
    dialect = "mysql";
    knex = knexFactory({
      client: "mysql2",
      connection: {
        host: url.hostname,
        port: Number(url.port || 3306),
        user: decodeURIComponent(url.username || "root"),
        password: decodeURIComponent(url.password),
        database: decodeURIComponent(url.pathname.replace(/^\//, "")),
        supportBigNumbers: true,
        bigNumberStrings: true,
        dateStrings: true,
        charset: "utf8mb4",
      },
      pool: {
        min: 0,
        max: config.poolSize,
        // Writers lock only the rows they change (no gap locks): concurrent payments, withdrawals
        // and settlements never block each other on index ranges. Snapshots ask for more.
        afterCreate(conn: { query(sql: string, cb: (err: Error | null) => void): void }, done: (err: Error | null, conn: unknown) => void) {
          conn.query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", (err) => done(err, conn));
        },
      },
      acquireConnectionTimeout: 30_000,
      compileSqlOnError: false,
    });
  } else {
    dialect = "sqlite";
    if (config.sqliteFile !== ":memory:") mkdirSync(dirname(config.sqliteFile), { recursive: true });
    knex = knexFactory({
      client: "better-sqlite3",
      connection: { filename: config.sqliteFile, options: { safeIntegers: true } },
      useNullAsDefault: true,
      compileSqlOnError: false,
      // One connection: SQLite has one writer, and a single connection serializes transactions
      // in the pool's queue instead of failing them with SQLITE_BUSY.
      pool: {
        min: 1,
        max: 1,
        afterCreate(conn: { pragma(s: string): unknown }, done: (err: Error | null, conn: unknown) => void) {
          conn.pragma("journal_mode = WAL");
          // FULL: every commit is synced to disk before it returns, so an acknowledged payment
          // survives a power loss (NORMAL, WAL's usual companion, may lose the last commits).
          conn.pragma("synchronous = FULL");
          conn.pragma("busy_timeout = 10000");
          conn.pragma("foreign_keys = ON");
          done(null, conn);
        },
      },
    });
    // knex writes a failed query's SQL, bindings filled in, into its error; its SQLite escaper
    // throws on a bigint binding, which would replace the database's error (the one the logs
    // need) with "str.replace is not a function". Integers are written as their digits.
    const client = knex.client as { _escapeBinding(value: unknown, context: unknown): string };
    const escape = client._escapeBinding.bind(client);
    client._escapeBinding = (value, context) => (typeof value === "bigint" ? value.toString() : escape(value, context));
  }
  await migrateLatest(knex, migrations);
  return { knex, dialect, close: () => knex.destroy() };
}

/**
 * Several instances starting together on a fresh database race to create knex's own migration
 * tables, and one of them holds the migration lock while it migrates: the others wait and try
 * again, then find the schema up to date.
 */
async function migrateLatest(knex: Knex, migrations: Record<string, Migration>): Promise<void> {
  const source = {
    getMigrations: async () => Object.keys(migrations).sort(),
    getMigrationName: (name: string) => name,
    getMigration: async (name: string) => migrations[name]!,
  };
  for (let attempt = 1; ; attempt++) {
    try {
      await knex.migrate.latest({ migrationSource: source });
      return;
    } catch (err) {
      const e = err as { code?: string; name?: string };
      const raced = e.code === "ER_TABLE_EXISTS_ERROR" || e.name === "MigrationLocked";
      if (!raced || attempt >= 60) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250 + Math.random() * 250));
    }
  }
}

/** An integer column or aggregate as bigint, whichever form the driver returned. */
export function toFen(value: unknown): bigint {
  if (value === null || value === undefined) return 0n;
  if (typeof value === "bigint") return value;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new Error(`integer out of range: ${value}`);
    return BigInt(value);
  }
  const text = String(value);
  // MySQL returns SUM() of integers as DECIMAL text such as "120" (never with a fraction here).
  return BigInt(text.endsWith(".0") ? text.slice(0, -2) : text);
}

/** A count or small integer column as number. */
export function toCount(value: unknown): number {
  return Number(toFen(value));
}

/**
 * Runs fn in a transaction, running it again (contention.ts: bounded attempts, jittered pauses)
 * when the database chose it as a deadlock victim or it waited too long for a lock. `snapshot`
 * gives a consistent read of several tables.
 */
export async function inTransaction<T>(
  db: Database,
  fn: (trx: Knex.Transaction) => Promise<T>,
  options: { snapshot?: boolean; attempts?: number } = {},
): Promise<T> {
  const config: Knex.TransactionConfig = options.snapshot && db.dialect === "mysql" ? { isolationLevel: "repeatable read" } : {};
  const policy = options.attempts === undefined ? CONTENTION_POLICY : { ...CONTENTION_POLICY, attempts: options.attempts };
  return retryOnContention(() => db.knex.transaction(fn, config), policy);
}

/**
 * Reads a table in pages ordered by a unique string key (keyset pagination): memory stays flat
 * however many rows there are, and no cursor is held open between pages.
 */
export async function* keysetPages<R extends Record<string, unknown>>(
  query: () => Knex.QueryBuilder,
  key: string,
  batchSize: number,
): AsyncGenerator<R[]> {
  let after: string | undefined;
  for (;;) {
    let q = query().orderBy(key).limit(batchSize);
    if (after !== undefined) q = q.where(key, ">", after);
    const rows = (await q) as R[];
    if (rows.length === 0) return;
    yield rows;
    if (rows.length < batchSize) return;
    after = String(rows[rows.length - 1]![key]);
  }
}

/** The mysql2 connection calls streamedPages makes. */
interface StreamingConnection {
  threadId: number;
  query(options: { sql: string; rowsAsArray: boolean }, bindings: readonly unknown[]): NodeJS.EventEmitter;
  query(sql: string, cb: (err: Error | null) => void): void;
  pause(): void;
  resume(): void;
  destroy(): void;
}

interface StreamingClient {
  acquireConnection(): Promise<StreamingConnection>;
  releaseConnection(conn: StreamingConnection): Promise<void>;
  /** KILL QUERY of the connection's statement, sent on a connection of its own. */
  cancelQuery(conn: StreamingConnection): Promise<void>;
}

/**
 * How long MySQL waits on a stalled stream of rows (its net_write_timeout, 60 s by default)
 * before it ends the statement: a reader may keep an export waiting this long.
 */
const STREAM_STALL_SECONDS = 3600;

/** How long a statement given up by its reader may take to end before its connection is closed. */
const CANCEL_WAIT_MS = 10_000;

function run(conn: StreamingConnection, sql: string): Promise<void> {
  return new Promise((resolve, reject) => conn.query(sql, (err) => (err ? reject(err) : resolve())));
}

/**
 * Runs one SELECT (MySQL only) on a connection of its own and yields its rows, as arrays of the
 * selected columns' values, in pages of `batchSize` as they arrive. One statement reads one
 * consistent snapshot and the table is read once, not once more per page. Memory stays flat:
 * while two pages wait for the consumer the connection stops reading, and the server waits
 * (up to STREAM_STALL_SECONDS). A consumer leaving early has the statement killed (KILL QUERY);
 * the rows still on their way are dropped and the connection goes back to the pool.
 */
export async function* streamedPages(knex: Knex, query: Knex.QueryBuilder, batchSize: number): AsyncGenerator<unknown[][]> {
  const { sql, bindings } = query.toSQL().toNative();
  const client = knex.client as StreamingClient;
  const conn = await client.acquireConnection();
  let finished = false;
  let ended = false;
  let paused = false;
  let wake: (() => void) | undefined;
  let dropping = false;
  try {
    await run(conn, `SET SESSION net_write_timeout = ${STREAM_STALL_SECONDS}`);
    const ready: unknown[][][] = [];
    let page: unknown[][] = [];
    let failure: unknown;
    const statement = conn.query({ sql, rowsAsArray: true }, bindings);
    statement.on("result", (row: unknown[]) => {
      if (dropping) return;
      page.push(row);
      if (page.length < batchSize) return;
      ready.push(page);
      page = [];
      if (ready.length >= 2 && !paused) {
        paused = true;
        conn.pause();
      }
      wake?.();
    });
    statement.on("error", (err: unknown) => {
      failure ??= err;
      ended = true;
      wake?.();
    });
    statement.on("end", () => {
      if (page.length > 0 && !dropping) ready.push(page);
      page = [];
      ended = true;
      wake?.();
    });
    for (;;) {
      if (failure !== undefined) throw failure;
      const next = ready.shift();
      if (next !== undefined) {
        if (paused && ready.length < 2) {
          paused = false;
          conn.resume();
        }
        yield next;
        continue;
      }
      if (ended) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    await run(conn, "SET SESSION net_write_timeout = @@GLOBAL.net_write_timeout");
    finished = true;
  } finally {
    if (!finished) {
      try {
        if (!ended) {
          // The consumer left with the statement still sending: it is killed, and the rows
          // still on their way are read and dropped so the connection can take a query again.
          dropping = true;
          await client.cancelQuery(conn);
          const stopped = new Promise<void>((resolve) => (wake = resolve));
          if (paused) conn.resume();
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise<void>((_, reject) => (timer = setTimeout(() => reject(new Error("statement not ended")), CANCEL_WAIT_MS)));
          try {
            if (!ended) await Promise.race([stopped, late]);
          } finally {
            clearTimeout(timer);
          }
        }
        await run(conn, "SET SESSION net_write_timeout = @@GLOBAL.net_write_timeout");
      } catch {
        conn.destroy(); // the pool drops it: knex checks a connection before handing it out
      }
    }
    await client.releaseConnection(conn);
  }
}

/**
 * `table` read through `index` on MySQL (FORCE INDEX), for a statement whose rows must come in
 * that index's order as the scan goes; the table itself on SQLite.
 */
export function throughIndex(db: Database, table: string, index: string): string | Knex.Raw {
  return db.dialect === "mysql" ? db.knex.raw("?? FORCE INDEX (??)", [table, index]) : table;
}

/**
 * The VALUES list of a multi-row INSERT: `row` (a parenthesized list of placeholders) `count`
 * times. The hot writes build their statements with it instead of the query builder, whose
 * compilation of every row showed in the profiles; the SQL is the same on both backends.
 */
export function valuesList(row: string, count: number): string {
  return new Array<string>(count).fill(row).join(", ");
}

/**
 * Runs an UPDATE or DELETE given as SQL with placeholders and answers how many rows it changed,
 * on either backend (mysql2 answers [ResultSetHeader, fields], better-sqlite3 through knex the
 * changes count).
 */
export async function changedRows(db: Knex, sql: string, bindings: readonly unknown[]): Promise<number> {
  const result = (await db.raw(sql, bindings as Knex.RawBinding[])) as unknown;
  if (Array.isArray(result)) return (result[0] as { affectedRows: number }).affectedRows;
  return (result as { changes: number }).changes;
}

/** A bigint as a query binding (both drivers take bigint; Knex's types do not say so). */
export function sqlInt(value: bigint): Knex.Value {
  return value as unknown as Knex.Value;
}
