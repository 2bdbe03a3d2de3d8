/**
 * The order export read by a slow reader, over many more orders than a page: every successful
 * order comes out once, in key order, and nothing else. On MySQL the orders come from one
 * streamed statement: while the reader waits the server is held back (the statement is still
 * running, rows are not read ahead into memory), and a reader leaving early ends the statement
 * and leaves the pool working. On SQLite each page is a query of its own, so writes go on while
 * the reader waits.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { expect } from "chai";
import { openDatabase, type Database } from "../../services/shared/storage/database.js";
import { paymentMigrations } from "../../services/payment/migrations/index.js";
import { exportOrders } from "../../services/payment/exports.js";
import { backends, freshStore, type Store } from "../harness.js";

const PAGE = 1000;

/** Orders 1…n: every tenth failed, the others successful, amount i fen. */
async function loadOrders(db: Database, n: number): Promise<void> {
  if (db.dialect === "mysql") {
    await db.knex.raw(
      `INSERT INTO payment_orders (request_id, request_time, saler_id, total_fee, response_id, response_time, response_code, response_msg)
       SELECT CONCAT('20261125', LPAD(seq, 12, '0')), '2026-11-25 00:00:00', CONCAT('ex-', seq MOD 7), seq,
              CONCAT('20261126', LPAD(seq, 12, '0')), '2026-11-26 00:00:00', IF(seq MOD 10 = 0, 'FAIL', 'SUCCESS'), 'OK'
       FROM seq_1_to_${n}`,
    );
    return;
  }
  await db.knex.raw(
    `WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < ${n})
     INSERT INTO payment_orders (request_id, request_time, saler_id, total_fee, response_id, response_time, response_code, response_msg)
     SELECT '20261125' || substr('000000000000' || i, -12), '2026-11-25 00:00:00', 'ex-' || (i % 7), i,
            '20261126' || substr('000000000000' || i, -12), '2026-11-26 00:00:00', CASE WHEN i % 10 = 0 THEN 'FAIL' ELSE 'SUCCESS' END, 'OK'
     FROM seq`,
  );
}

/** The export's statements still running on the server, on the test's database. */
async function runningExports(db: Database, database: string): Promise<number> {
  const [rows] = (await db.knex.raw("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ? AND COMMAND = 'Query' AND INFO LIKE ?", [
    database,
    "select `request_id`%",
  ])) as [{ n: unknown }[]];
  return Number(rows[0]!.n);
}

async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not done in ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

for (const backend of backends()) {
  describe(`order export to a slow reader [${backend.name}]`, () => {
    // Enough rows that on MySQL they are far more than the socket buffers hold between server and client.
    const n = backend.mysqlUrl ? 200_000 : 20_000;
    const successful = n - Math.floor(n / 10);
    let store: Store;
    let db: Database;
    let database = "";

    before(async () => {
      store = freshStore(backend, "payment");
      db = await openDatabase({ mysqlUrl: store.mysqlUrl, sqliteFile: store.sqliteFile, poolSize: 3 }, paymentMigrations);
      if (store.mysqlUrl) database = new URL(store.mysqlUrl).pathname.slice(1);
      await loadOrders(db, n);
    });
    after(async () => {
      await db?.close();
      await store?.drop();
    });

    it("gives every successful order once, in key order, while the reader pauses and writes go on", async () => {
      const pages = exportOrders(db, "PAYMENT", "response_id", "", PAGE);
      try {
        await readSlowly(pages);
      } finally {
        await pages.return(undefined);
      }
    });

    async function readSlowly(pages: ReturnType<typeof exportOrders>): Promise<void> {
      const first = await pages.next();
      expect(first.done).to.equal(false);
      expect(first.value!.length).to.equal(PAGE);
      // The reader stops for a while: the export holds back, and writes are not blocked by it.
      await sleep(1000);
      if (db.dialect === "mysql") expect(await runningExports(db, database), "the statement waits for the reader").to.equal(1);
      await within(5000, "a write during the export", db.knex("payment_orders").where({ response_id: "20261126000000000010" }).update({ response_msg: "checked" }));

      let count = 0;
      let sum = 0n;
      let last = "";
      let pageCount = 0;
      const check = (rows: typeof first.value) => {
        for (const r of rows!) {
          const i = Number(r.responseId.slice(8));
          expect(r.responseId > last, `${r.responseId} after ${last}`).to.equal(true);
          expect(i % 10, r.responseId).to.not.equal(0);
          expect([r.requestId, r.salerId, r.amount, r.requestTime, r.responseTime]).to.deep.equal([
            `20261125${r.responseId.slice(8)}`,
            `ex-${i % 7}`,
            BigInt(i),
            "2026-11-25 00:00:00",
            "2026-11-26 00:00:00",
          ]);
          last = r.responseId;
          count++;
          sum += r.amount;
        }
      };
      check(first.value);
      for await (const rows of pages) {
        expect(rows.length).to.be.at.most(PAGE);
        check(rows);
        if (++pageCount % 20 === 0) await sleep(50);
      }
      expect(count).to.equal(successful);
      // 1 + … + n less the multiples of ten.
      const all = (BigInt(n) * BigInt(n + 1)) / 2n;
      const tenths = BigInt(Math.floor(n / 10));
      expect(sum).to.equal(all - (10n * tenths * (tenths + 1n)) / 2n);
      if (db.dialect === "mysql") expect(await runningExports(db, database)).to.equal(0);
    }

    it("ends the statement when the reader leaves early, and the pool keeps working", async () => {
      for (let round = 0; round < 3; round++) {
        const pages = exportOrders(db, "PAYMENT", "response_id", "", PAGE);
        let taken = 0;
        for await (const rows of pages) {
          taken += rows.length;
          if (taken >= 2 * PAGE) break;
        }
        expect(taken).to.equal(2 * PAGE);
      }
      if (db.dialect === "mysql") {
        const deadline = Date.now() + 10_000;
        while ((await runningExports(db, database)) > 0) {
          if (Date.now() > deadline) throw new Error("an export statement still runs after its reader left");
          await sleep(100);
        }
      }
      const [row] = (await db.knex("payment_orders").where({ response_code: "SUCCESS" }).count({ c: "*" })) as { c: unknown }[];
      expect(Number(row!.c)).to.equal(successful);
      let count = 0;
      for await (const rows of exportOrders(db, "PAYMENT", "response_id", "", PAGE)) count += rows.length;
      expect(count).to.equal(successful);
    });
  });
}
