/**
 * The same reconciliation in DuckDB, in a process of its own so that its peak RSS is its own: a
 * FULL OUTER JOIN of the two order files on response_id giving each order its diff type, written
 * as CSV. Prints JSON: time, peak RSS (read before the untimed count check), counts per type.
 * With `ordered`, the rows are written in the seed's order (the payment side's orders by key,
 * then the merchant-only ones by key), as the service writes them: the cost of that order alone.
 * DUCKDB_MEMORY_LIMIT (e.g. 307MB) sets DuckDB's memory_limit; unset, DuckDB's default.
 *
 *   npx tsx bench/duckdbReconcileChild.ts merchant.csv payment.csv diff.csv [ordered]
 */
import { DuckDBInstance } from "@duckdb/node-api";

const [merchant, payment, out, order] = process.argv.slice(2) as [string, string, string, string | undefined];
const orderBy = order === "ordered" ? "ORDER BY p.response_id IS NULL, coalesce(p.response_id, m.response_id)" : "";
const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
const columns = "{'request_id': 'VARCHAR', 'response_id': 'VARCHAR', 'saler_id': 'VARCHAR', 'total_fee': 'BIGINT', 'request_time': 'VARCHAR', 'response_time': 'VARCHAR'}";
const read = (file: string) => `read_csv(${quote(file)}, header = true, columns = ${columns})`;

const startRssMb = Math.round(process.memoryUsage().rss / 2 ** 20);
const t0 = performance.now();
const instance = await DuckDBInstance.create(":memory:", process.env.DUCKDB_MEMORY_LIMIT ? { memory_limit: process.env.DUCKDB_MEMORY_LIMIT } : {});
const db = await instance.connect();
await db.run(`COPY (
  SELECT coalesce(p.request_id, m.request_id) AS request_id,
         coalesce(p.response_id, m.response_id) AS response_id,
         coalesce(p.saler_id, m.saler_id) AS saler_id,
         coalesce(p.total_fee, m.total_fee) AS total_fee,
         CASE WHEN m.response_id IS NULL THEN 'F113'
              WHEN p.response_id IS NULL THEN 'F114'
              WHEN m.total_fee = p.total_fee THEN 'F000'
              ELSE 'F115' END AS diff_type,
         m.total_fee AS merchant_amount,
         p.total_fee AS payment_amount,
         coalesce(p.request_time, m.request_time) AS request_time,
         coalesce(p.response_time, m.response_time) AS response_time
  FROM ${read(merchant)} m FULL OUTER JOIN ${read(payment)} p ON m.response_id = p.response_id
  ${orderBy}
) TO ${quote(out)} (HEADER, DELIMITER ',')`);
const ms = Math.round(performance.now() - t0);
const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);

const counts: Record<string, number> = { F000: 0, F113: 0, F114: 0, F115: 0 };
const reader = await db.runAndReadAll(`SELECT diff_type, count(*) FROM read_csv(${quote(out)}, header = true) GROUP BY diff_type`);
for (const [type, n] of reader.getRows()) counts[String(type)] = Number(n);
const threads = (await db.runAndReadAll("SELECT current_setting('threads')")).getRows()[0]![0];
const version = (await db.runAndReadAll("SELECT version()")).getRows()[0]![0];
process.stdout.write(JSON.stringify({ ms, startRssMb, peakRssMb, threads: Number(threads), version: String(version), f000: counts.F000, f113: counts.F113, f114: counts.F114, f115: counts.F115 }));
