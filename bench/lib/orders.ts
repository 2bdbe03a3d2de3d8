/**
 * Synthetic payment orders loaded straight into a payment database with INSERT … SELECT from
 * MariaDB's sequence engine: far faster than the API, and the same rows the API would write.
 * Order i (1-based) has request and response ids made of a real second and a 6-digit sequence,
 * account `<prefix><i mod accounts>` and amount 100 + (i mod 9973) fen.
 */
import mysql from "mysql2/promise";
import { databaseUrl } from "./common.js";

export async function withConnection<T>(database: string, fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
  const conn = await mysql.createConnection({ uri: databaseUrl(database), supportBigNumbers: true, bigNumberStrings: true });
  try {
    return await fn(conn);
  } finally {
    await conn.end();
  }
}

/** Inserts `count` payment orders; pending (settlement_id NULL) unless `settlementId` is given. */
export async function loadPaymentOrders(
  database: string,
  count: number,
  options: { accounts: number; prefix: string; settlementId?: number; chunk?: number },
): Promise<{ amount: bigint }> {
  const chunk = options.chunk ?? 250_000;
  return withConnection(database, async (c) => {
    for (let from = 1; from <= count; from += chunk) {
      const to = Math.min(count, from + chunk - 1);
      // Response ids a day after the request ids, both in whole real seconds.
      await c.query(
        `INSERT INTO payment_orders (request_id, request_time, saler_id, total_fee, response_id, response_time, response_code, response_msg, settlement_id)
         SELECT CONCAT(20261125000000 + (seq DIV 1000000), LPAD(seq MOD 1000000, 6, '0')), '2026-11-25 00:00:00',
                CONCAT(?, seq MOD ?), 100 + seq MOD 9973,
                CONCAT(20261126000000 + (seq DIV 1000000), LPAD(seq MOD 1000000, 6, '0')), '2026-11-26 00:00:00',
                'SUCCESS', 'OK', ?
         FROM seq_${from}_to_${to}`,
        [options.prefix, options.accounts, options.settlementId ?? null],
      );
    }
    const [rows] = (await c.query("SELECT SUM(total_fee) AS s FROM payment_orders")) as unknown as [{ s: string }[]];
    return { amount: BigInt(rows[0]!.s) };
  });
}

/** Creates the accounts `<prefix>0` … `<prefix><accounts-1>` with a zero balance. */
export async function createAccounts(database: string, accounts: number, prefix: string, table = "accounts"): Promise<void> {
  await withConnection(database, (c) =>
    c.query(
      `INSERT INTO ${table} (saler_id, balance, created_time, updated_time)
       SELECT CONCAT(?, seq), 0, '2026-11-26 00:00:00', '2026-11-26 00:00:00' FROM seq_0_to_${accounts - 1}`,
      [prefix],
    ),
  );
}
