/**
 * The comparison and the audit, run by DuckDB over the CSV files of a run.
 *
 * Files are read by DuckDB's CSV reader (RFC 4180, every column as text). A reconciliation reads
 * both files once: a FULL OUTER JOIN gives each order its diff type and is sorted into the seed's
 * order as it is kept in a temporary table; one scan of that table then checks every row (a
 * key, an amount that is an integer in [0, 10^12]), finds a key twice in a file as two
 * neighbouring rows with the same key, and sums every diff type as HUGEINT (a total beyond int64
 * is refused); COPY writes the table as the diff file. An audit reads its files into temporary
 * tables, in the file's order (a row number is a record number), checks them and sums per account.
 * Anything refused is located with the record scanner of inputFiles.ts, reading the files again:
 * file, physical line, column and the value.
 *
 * One DuckDB instance serves every run: its memory limit bounds them all, and its sorts, joins
 * and aggregates spill to a directory under the reconciliation directory beyond it.
 */
import { open } from "node:fs/promises";
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import { Code, ConnectError } from "@connectrpc/connect";
import { diagnose, excerpt, headerOf, recordsAt, refuseFile } from "./inputFiles.js";

export const MAX_AMOUNT = 1_000_000_000_000n;
const INT64_MAX = 2n ** 63n - 1n;

export type { DiffType } from "./diffTypes.js";

export interface DiffTotals {
  merchantRows: bigint;
  paymentRows: bigint;
  f000Count: bigint;
  f000Amount: bigint;
  f113Count: bigint;
  f113Amount: bigint;
  f114Count: bigint;
  f114Amount: bigint;
  f115Count: bigint;
  f115Amount: bigint;
}

export interface AuditTotals {
  accounts: bigint;
  success: bigint;
  fail: bigint;
  merchantOnly: bigint;
  paymentOnly: bigint;
}

export interface EngineOptions {
  /** RECON_MEMORY_LIMIT, e.g. "512MB": what the engine may add to the service's memory. */
  memoryLimit: string;
  threads: number;
  /** Where DuckDB spills what does not fit in memory. */
  spillDir: string;
}

export const AMOUNT_COLUMNS = ["total_fee", "withdraw_money", "refund_fee", "amount"] as const;

/** The diff file: the seed's columns first, then the rest. */
export function diffFileHeader(amountColumn: string): string[] {
  return ["request_id", "response_id", amountColumn, "diff_type", "saler_id", "merchant_amount", "payment_amount", "request_time", "response_time"];
}

export const AUDIT_HEADER = ["saler_id", "balance", "result", "audit_amount", "in_merchant", "in_payment"];

/** The columns of an order file copied into the diff file, besides the amount. */
const PAYLOAD = ["request_id", "response_id", "saler_id", "request_time", "response_time"];

/** A CSV file of a run and the name errors give it. */
export interface RunInput {
  path: string;
  label: string;
}

const sql = (s: string) => `'${s.replaceAll("'", "''")}'`;

interface Columns {
  names: string[];
  at(name: string): number;
}

async function columnsOf(file: RunInput, required: string[][]): Promise<Columns> {
  const header = await headerOf(file.path);
  if (!header) throw refuseFile(file.label, undefined, undefined, "the file is empty: it needs at least a header row");
  if (header.error) throw refuseFile(file.label, header.error.line, undefined, header.error.reason);
  const names = header.fields.map((f) => f.trim().toLowerCase());
  const at = (name: string) => names.indexOf(name);
  for (const alternatives of required) {
    if (!alternatives.some((a) => at(a) >= 0)) {
      throw refuseFile(file.label, header.line, undefined, `the header has no ${alternatives.join(" or ")} column (header: ${excerpt(header.fields.join(","))})`);
    }
  }
  return { names, at };
}

/** One run's DuckDB session: its temporary tables go with it. */
class Session {
  private tables = 0;
  constructor(private readonly db: DuckDBConnection) {}

  async rows(query: string, values?: (string | number)[]): Promise<Record<string, unknown>[]> {
    const reader = await this.db.runAndReadAll(query, values);
    return reader.getRowObjects();
  }

  async run(query: string): Promise<void> {
    await this.db.run(query);
  }

  /** DuckDB's reading of a CSV file: column c<i> holds field i as text (an empty unquoted field is NULL). */
  static read(file: RunInput, columns: Columns): string {
    const types = columns.names.map((_, i) => `'c${i}': 'VARCHAR'`).join(", ");
    return (
      `read_csv(${sql(file.path)}, header = true, auto_detect = false, delim = ',', quote = '"', escape = '"', ` +
      `strict_mode = true, allow_quoted_nulls = false, columns = {${types}})`
    );
  }

  /** Runs a statement that reads files; a file DuckDB cannot read is refused, located when possible. */
  async reading<T>(files: RunInput[], work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof ConnectError) throw err;
      const message = (err as Error).message ?? String(err);
      if (message.startsWith("Out of Memory Error")) {
        // Not the files' fault: the engine's memory (RECON_MEMORY_LIMIT) is too small for them.
        throw new ConnectError(
          `${files.map((f) => f.label).join(", ")}: the comparison needs more memory than RECON_MEMORY_LIMIT gives it: ${message.split("\n")[0]!.slice(0, 200)}`,
          Code.ResourceExhausted,
        );
      }
      for (const file of files) {
        const located = await diagnose(file.path, file.label);
        if (located) throw located;
      }
      let first = ((err as Error).message ?? String(err)).split("\n").slice(0, 2).join(" ");
      for (const file of files) first = first.replaceAll(file.path, file.label);
      throw new ConnectError(`${files.map((f) => f.label).join(", ")}: cannot be read as CSV: ${first.slice(0, 200)}`, Code.InvalidArgument);
    }
  }

  /** Keeps a query's rows in a temporary table, in the query's order. */
  async table(query: string): Promise<string> {
    const table = `t${this.tables++}`;
    await this.run(`CREATE TEMP TABLE ${table} AS ${query}`);
    return table;
  }

  /** Reads a CSV file into a temporary table, in the file's order: rowid n-1 is data record n. */
  async load(file: RunInput, columns: Columns, select: (c: (name: string) => string) => string): Promise<string> {
    const table = `t${this.tables++}`;
    await this.reading([file], () => this.run(`CREATE TEMP TABLE ${table} AS SELECT ${select(pick(columns))} FROM ${Session.read(file, columns)}`));
    return table;
  }

  /**
   * Refuses the first record breaking one of the checks. `relation` has the checked columns and
   * `ord`, the data record number (1 for the first record after the header).
   */
  async checkRows(relation: string, file: RunInput, checks: { column: string; where: string; reason: (value: string) => string }[]): Promise<void> {
    // reason() gets the value already cut and quoted (excerpt).
    const found = await this.rows(`SELECT ${checks.map((k, i) => `min(ord) FILTER (WHERE ${k.where}) AS e${i}`).join(", ")} FROM ${relation}`);
    let worst: { ord: number; check: (typeof checks)[number] } | undefined;
    checks.forEach((check, i) => {
      const v = found[0]![`e${i}`];
      if (v !== null && v !== undefined && (!worst || Number(v) < worst.ord)) worst = { ord: Number(v), check };
    });
    if (!worst) return;
    const record = (await recordsAt(file.path, [worst.ord])).get(worst.ord);
    const header = await headerOf(file.path);
    const at = header!.fields.map((f) => f.trim().toLowerCase()).indexOf(worst.check.column);
    const value = excerpt(record?.fields[at] ?? "", record?.lengths[at]);
    throw refuseFile(file.label, record?.line, worst.check.column, worst.check.reason(value));
  }

  /** Refuses a key present twice in one file, naming both lines. `relation` has k and ord. */
  async checkUnique(relation: string, file: RunInput, column: string): Promise<void> {
    const dup = await this.rows(`SELECT k, min(ord) AS a FROM ${relation} WHERE k IS NOT NULL GROUP BY k HAVING count(*) > 1 ORDER BY a LIMIT 1`);
    if (dup.length === 0) return;
    const k = String(dup[0]!.k);
    const [a, b] = (await this.rows(`SELECT ord FROM ${relation} WHERE k = $1 ORDER BY ord LIMIT 2`, [k])).map((r) => Number(r.ord)) as [number, number];
    const records = await recordsAt(file.path, [a, b]);
    throw refuseFile(file.label, records.get(b)?.line, column, `duplicate ${column} ${excerpt(k)}: also on line ${records.get(a)?.line}`);
  }

  /** Writes a query's rows as CSV: UTF-8 byte order mark, header, CRLF line ends. */
  async copy(query: string, header: string[], path: string, rows: bigint): Promise<void> {
    const head = "\ufeff" + header.join(",") + "\r\n";
    if (rows === 0n) {
      const fh = await open(path, "w");
      await fh.writeFile(head);
      await fh.close();
      return;
    }
    // DuckDB writes the suffix in place of the last row's line end: CRLF keeps it.
    await this.run(`COPY (${query}) TO ${sql(path)} (FORMAT csv, HEADER false, DELIMITER ',', QUOTE '"', NEW_LINE '\r\n', PREFIX ${sql(head)}, SUFFIX '\r\n')`);
  }

  async drop(): Promise<void> {
    for (let i = 0; i < this.tables; i++) await this.run(`DROP TABLE IF EXISTS t${i}`).catch(() => {});
  }
}

/** Column SQL by header name: c<i>, or NULL when the file has no such column. */
function pick(columns: Columns): (name: string) => string {
  return (name: string) => {
    const i = columns.at(name);
    return i < 0 ? "NULL::VARCHAR" : `c${i}`;
  };
}

/** The SQL of a checked amount: the value when it is written as digits only and is at most max, else NULL. */
function amountSql(text: string, max: bigint): string {
  return `CASE WHEN regexp_full_match(${text}, '[0-9]{1,${max.toString().length}}') AND TRY_CAST(${text} AS UBIGINT) <= ${max} THEN CAST(${text} AS BIGINT) END`;
}

/**
 * The share of the engine's memory given to DuckDB's buffer pool (its memory_limit). DuckDB
 * allocates beyond its pool (per-thread buffers, allocator caches): on 4M vs 4M orders with
 * 2 threads, a 384 MB pool gave the service a peak RSS of 847 MB (Node.js about 140 MB of it),
 * a 307 MB pool (60 % of 512 MB) 649 MB.
 */
export const BUFFER_POOL_SHARE = 0.6;

export function bufferPoolOf(memoryLimit: string): string {
  const m = /^(\d+)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i.exec(memoryLimit.trim());
  if (!m) throw new Error(`a memory size such as 512MB, got "${memoryLimit}"`);
  const scale = { KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40 }[m[2]!.toUpperCase()]!;
  return `${Math.floor((Number(m[1]) * scale * BUFFER_POOL_SHARE) / 1e6)}MB`;
}

function toBig(v: unknown): bigint {
  return v === null || v === undefined ? 0n : BigInt(String(v));
}

export class ReconEngine {
  private instance: Promise<DuckDBInstance> | undefined;

  constructor(private readonly options: EngineOptions) {}

  private async session<T>(work: (s: Session) => Promise<T>): Promise<T> {
    this.instance ??= DuckDBInstance.create(":memory:", {
      memory_limit: bufferPoolOf(this.options.memoryLimit),
      threads: String(this.options.threads),
      temp_directory: this.options.spillDir,
      preserve_insertion_order: "true",
    }).catch((err: unknown) => {
      this.instance = undefined; // the next run tries again
      throw err;
    });
    const db = await (await this.instance).connect();
    const s = new Session(db);
    try {
      return await work(s);
    } finally {
      await s.drop();
      db.closeSync();
    }
  }

  /**
   * Compares two order files on `key` and writes the diff file. Rows: the payment side's orders in
   * key order (F000, F115, F113), then the merchant-only ones (F114) in key order.
   */
  async reconcile(merchant: RunInput, payment: RunInput, key: string, amountColumn: string, out: string): Promise<DiffTotals> {
    return this.session(async (s) => {
      const sides = await Promise.all(
        [merchant, payment].map(async (file) => {
          const cols = await columnsOf(file, [[key], [...AMOUNT_COLUMNS]]);
          const amount = AMOUNT_COLUMNS.find((a) => cols.at(a) >= 0)!;
          return { file, cols, amount, read: Session.read(file, cols), c: pick(cols) };
        }),
      );
      const [m, p] = sides as [(typeof sides)[number], (typeof sides)[number]];
      const checked = (side: typeof m, numbered: boolean) =>
        `(SELECT ${numbered ? "row_number() OVER () AS ord, " : ""}${side.c(key)} AS k, ${amountSql(side.c(side.amount), MAX_AMOUNT)} AS amount FROM ${side.read})`;
      // One read of both files: the FULL OUTER JOIN gives every order its diff type and is sorted
      // into the seed's order as it is kept in a temporary table (spilled beyond the memory limit).
      // `bad` marks a row breaking a rule of its own (an empty key, an amount out of range).
      const wide = (side: typeof m) =>
        `(SELECT ${side.c(key)} AS k, ${amountSql(side.c(side.amount), MAX_AMOUNT)} AS amount, ` +
        `${amountSql(side.c(side.amount), MAX_AMOUNT)} IS NULL AS bad, ` +
        `${PAYLOAD.filter((n) => n !== key).map((n) => `${side.c(n)} AS ${n}`).join(", ")} FROM ${side.read})`;
      // The key column is carried once, as k.
      const f = (name: string) => (name === key ? "coalesce(p.k, m.k)" : `coalesce(p.${name}, m.${name})`);
      // Kept narrow (the sort holds every row): the diff type and the amount are derived when
      // the table is written.
      const diff = await s.reading([merchant, payment], () =>
        s.table(
          `SELECT ${f("request_id")} AS request_id, ${f("response_id")} AS response_id, ${f("saler_id")} AS saler_id,
                  m.amount AS merchant_amount, p.amount AS payment_amount,
                  ${f("request_time")} AS request_time, ${f("response_time")} AS response_time,
                  coalesce(p.k, m.k, '') = '' OR coalesce(m.bad, false) OR coalesce(p.bad, false) AS bad
           FROM ${wide(m)} m FULL OUTER JOIN ${wide(p)} p ON m.k = p.k
           ORDER BY p.k IS NULL, coalesce(p.k, m.k)`,
        ),
      );
      // Once no row is bad, a row has an amount on each side it is on.
      const type = `CASE WHEN merchant_amount IS NULL THEN 'F113' WHEN payment_amount IS NULL THEN 'F114' WHEN merchant_amount = payment_amount THEN 'F000' ELSE 'F115' END`;
      const sum = (t: string, amount: string) => `count(*) FILTER (WHERE diff_type = '${t}') AS ${t.toLowerCase()}_count, CAST(sum(${amount}) FILTER (WHERE diff_type = '${t}') AS VARCHAR) AS ${t.toLowerCase()}_amount`;
      // Sorted by key, a key twice in a file gives two neighbouring rows with that key (lag over
      // the table's order, which is the sort's).
      const [stats] = await s.rows(
        `SELECT count(merchant_amount) AS merchant_rows, count(payment_amount) AS payment_rows, bool_or(bad OR dup) AS bad,
                ${sum("F000", "payment_amount")}, ${sum("F113", "payment_amount")}, ${sum("F114", "merchant_amount")}, ${sum("F115", "payment_amount")}
         FROM (SELECT merchant_amount, payment_amount, bad, ${type} AS diff_type, coalesce(${key} = lag(${key}) OVER (), false) AS dup FROM ${diff})`,
      );
      if (stats!.bad === true) {
        // Find and name the first offence, reading the files again with record numbers.
        for (const side of [m, p]) {
          const rel = checked(side, true);
          await s.checkRows(rel, side.file, [
            { column: key, where: "k IS NULL OR k = ''", reason: () => "the key is empty" },
            { column: side.amount, where: "amount IS NULL", reason: (v) => `the amount must be an integer number of fen from 0 to ${MAX_AMOUNT}, got ${v}` },
          ]);
          await s.checkUnique(rel, side.file, key);
        }
        throw new Error(`${merchant.label}, ${payment.label}: a rule is broken but no row was found breaking it`);
      }
      const t: DiffTotals = {
        merchantRows: toBig(stats!.merchant_rows),
        paymentRows: toBig(stats!.payment_rows),
        f000Count: toBig(stats!.f000_count),
        f000Amount: toBig(stats!.f000_amount),
        f113Count: toBig(stats!.f113_count),
        f113Amount: toBig(stats!.f113_amount),
        f114Count: toBig(stats!.f114_count),
        f114Amount: toBig(stats!.f114_amount),
        f115Count: toBig(stats!.f115_count),
        f115Amount: toBig(stats!.f115_amount),
      };
      for (const type of ["f000", "f113", "f114", "f115"] as const) {
        const total = t[`${type}Amount`];
        if (total > INT64_MAX) {
          throw new ConnectError(`${merchant.label}, ${payment.label}: the ${type.toUpperCase()} total ${total} does not fit a 64-bit integer of fen; split the files`, Code.InvalidArgument);
        }
      }
      const rows = t.f000Count + t.f113Count + t.f114Count + t.f115Count;
      await s.copy(
        `SELECT request_id, response_id, coalesce(payment_amount, merchant_amount), ${type}, saler_id, merchant_amount, payment_amount, request_time, response_time FROM ${diff}`,
        diffFileHeader(amountColumn),
        out,
        rows,
      );
      return t;
    });
  }

  /**
   * Audits per account: the merchant's payments minus its withdrawals and refunds against the
   * balances (without a refunds file there are none). Order
   * files need saler_id and an amount; when they have a response_id (or request_id) column, its
   * values must be unique. Writes audit.csv in saler_id order.
   */
  async audit(
    payments: RunInput,
    withdrawals: RunInput,
    refunds: RunInput | undefined,
    balances: RunInput,
    out: string,
  ): Promise<{ totals: AuditTotals; rows: bigint[] }> {
    return this.session(async (s) => {
      const orders = async (file: RunInput) => {
        const cols = await columnsOf(file, [["saler_id"], [...AMOUNT_COLUMNS]]);
        const amount = AMOUNT_COLUMNS.find((a) => cols.at(a) >= 0)!;
        const key = ["response_id", "request_id"].find((k) => cols.at(k) >= 0);
        const table = await s.load(file, cols, (c) => `${c("saler_id")} AS saler_id, ${amountSql(c(amount), MAX_AMOUNT)} AS amount, ${key ? c(key) : "NULL::VARCHAR"} AS k`);
        await s.checkRows(`(SELECT rowid + 1 AS ord, * FROM ${table})`, file, [
          { column: "saler_id", where: "saler_id IS NULL OR saler_id = ''", reason: () => "saler_id is empty" },
          { column: amount, where: "amount IS NULL", reason: (v) => `the amount must be an integer number of fen from 0 to ${MAX_AMOUNT}, got ${v}` },
          ...(key ? [{ column: key, where: "k IS NULL OR k = ''", reason: () => `${key} is empty` }] : []),
        ]);
        if (key) await s.checkUnique(`(SELECT rowid + 1 AS ord, k FROM ${table})`, file, key);
        return table;
      };
      const p = await orders(payments);
      const w = await orders(withdrawals);
      const r = refunds ? await orders(refunds) : undefined;
      const bcols = await columnsOf(balances, [["saler_id"], ["balance"]]);
      const b = await s.load(balances, bcols, (c) => `${c("saler_id")} AS saler_id, ${amountSql(c("balance"), INT64_MAX)} AS balance`);
      await s.checkRows(`(SELECT rowid + 1 AS ord, * FROM ${b})`, balances, [
        { column: "saler_id", where: "saler_id IS NULL OR saler_id = ''", reason: () => "saler_id is empty" },
        { column: "balance", where: "balance IS NULL", reason: (v) => `the balance must be an integer number of fen from 0 to ${INT64_MAX}, got ${v}` },
      ]);
      await s.checkUnique(`(SELECT rowid + 1 AS ord, saler_id AS k FROM ${b})`, balances, "saler_id");
      await s.run(
        `CREATE TEMP TABLE a AS
         WITH sums AS (
           SELECT saler_id, sum(amount) AS total FROM (
             SELECT saler_id, CAST(amount AS HUGEINT) AS amount FROM ${p}
             UNION ALL SELECT saler_id, -CAST(amount AS HUGEINT) FROM ${w}${r ? `
             UNION ALL SELECT saler_id, -CAST(amount AS HUGEINT) FROM ${r}` : ""}) GROUP BY saler_id)
         SELECT coalesce(s.saler_id, b.saler_id) AS saler_id, coalesce(b.balance, 0) AS balance,
                coalesce(s.total, 0) AS audit_amount, s.saler_id IS NOT NULL AS in_merchant, b.saler_id IS NOT NULL AS in_payment
         FROM sums s FULL OUTER JOIN ${b} b ON s.saler_id = b.saler_id`,
      );
      try {
        const [summary] = await s.rows(
          `SELECT count(*) AS accounts, count(*) FILTER (WHERE balance = audit_amount) AS success,
                  count(*) FILTER (WHERE NOT in_payment) AS merchant_only, count(*) FILTER (WHERE NOT in_merchant) AS payment_only,
                  CAST(max(audit_amount) AS VARCHAR) AS hi, CAST(min(audit_amount) AS VARCHAR) AS lo,
                  (SELECT count(*) FROM ${p}) AS p, (SELECT count(*) FROM ${w}) AS w, (SELECT count(*) FROM ${b}) AS b,
                  ${r ? `(SELECT count(*) FROM ${r})` : "0"} AS r
           FROM a`,
        );
        const hi = toBig(summary!.hi);
        const lo = toBig(summary!.lo);
        if (hi > INT64_MAX || lo < -INT64_MAX - 1n) {
          const worst = hi > INT64_MAX ? hi : lo;
          const [who] = await s.rows(`SELECT saler_id FROM a WHERE audit_amount = CAST($1 AS HUGEINT) LIMIT 1`, [worst.toString()]);
          throw new ConnectError(`saler_id ${excerpt(String(who?.saler_id))}: the audit amount ${worst} does not fit a 64-bit integer of fen`, Code.InvalidArgument);
        }
        const totals: AuditTotals = {
          accounts: toBig(summary!.accounts),
          success: toBig(summary!.success),
          fail: toBig(summary!.accounts) - toBig(summary!.success),
          merchantOnly: toBig(summary!.merchant_only),
          paymentOnly: toBig(summary!.payment_only),
        };
        await s.copy(
          `SELECT saler_id, balance, CASE WHEN balance = audit_amount THEN 'SUCCESS' ELSE 'FAIL' END, CAST(audit_amount AS BIGINT), in_merchant, in_payment FROM a ORDER BY saler_id`,
          AUDIT_HEADER,
          out,
          totals.accounts,
        );
        return { totals, rows: [toBig(summary!.p), toBig(summary!.w), toBig(summary!.b), toBig(summary!.r)] };
      } finally {
        await s.run("DROP TABLE IF EXISTS a").catch(() => {});
      }
    });
  }

  close(): void {
    const instance = this.instance;
    this.instance = undefined;
    void instance?.then((i) => i.closeSync()).catch(() => {});
  }
}

