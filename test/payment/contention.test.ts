/**
 * Lock contention never reaches a caller as a failure: deadlocks are provoked on purpose on
 * MariaDB (another session that locks the rows a batch needs, in the opposite order; two
 * instances inserting the same request_ids in opposite orders) and every caller still gets
 * SUCCESS or the stored answer. On SQLite, another process holding the file's write lock past
 * the busy wait makes a payment or merchant write meet SQLITE_BUSY, which is retried the same way.
 */
import { spawn } from "node:child_process";
import { expect } from "chai";
import type { Knex } from "knex";
import mysql from "mysql2/promise";
import Database from "better-sqlite3";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { PaymentService, PayRequestSchema, type PayResponse } from "../../gen/payment/v1/payment_pb.js";
import { createGrpcClient, type GrpcClientHandle } from "../../services/shared/rpc/grpcClient.js";
import { startPaymentSystem, type PaymentSystem } from "../../services/payment/system.js";
import { createPaymentService } from "../../services/payment/service.js";
import { readPaymentConfig } from "../../services/payment/config.js";
import { MemoryCreditBuffer } from "../../services/payment/creditBuffer.js";
import { Settlement } from "../../services/payment/settlement.js";
import { paymentMigrations } from "../../services/payment/migrations/index.js";
import { openDatabase, type Database as Db } from "../../services/shared/storage/database.js";
import { retryOnContention } from "../../services/shared/storage/contention.js";
import { toClientError } from "../../services/shared/errors.js";
import { BusinessClock } from "../../services/shared/orders/time.js";
import { backends, freshStore, NO_ENV, paymentConfig, silentLogger, startPlatform, uniqueName, type Platform, type Store } from "../harness.js";
import { countRows, inParallel, payRequest, storedBalance, withdrawRequest } from "./fixtures.js";
import { deleteRedisKeys } from "../support/cleanup.js";

const clock = new BusinessClock("Asia/Shanghai");

/** The server's count of deadlocks so far (every database on it: only ever a lower bound for ours). */
async function deadlocksSoFar(conn: mysql.Connection): Promise<number> {
  const [rows] = (await conn.query("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")) as unknown as [{ Value: string }[]];
  return Number(rows[0]?.Value ?? 0);
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function orderRow(req: { requestId: string; requestTime: string; salerId: string; totalFee: bigint }, responseId: string) {
  return [req.requestId, req.requestTime, req.salerId, String(req.totalFee), responseId, req.requestTime, "SUCCESS", "OK"];
}
/**
 * Inserts into the orders table of this connection's database under way in other sessions: while
 * this session holds a row they need, they are waiting for it (the server is shared, so only
 * this database counts).
 */
async function ordersInsertsUnderWay(conn: mysql.Connection): Promise<number> {
  const [rows] = (await conn.query(
    "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE 'insert into `payment_orders`%'",
  )) as unknown as [{ n: number }[]];
  return Number(rows[0]!.n);
}
const INSERT_ORDER =
  "INSERT INTO payment_orders (request_id, request_time, saler_id, total_fee, response_id, response_time, response_code, response_msg) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";

for (const backend of backends().filter((b) => b.mysqlUrl !== undefined)) {
  describe(`lock contention on the payment system [${backend.name}]`, () => {
    let store: Store;
    let admin: mysql.Connection;

    beforeEach(async () => {
      store = freshStore(backend, "payment");
    });
    afterEach(async () => {
      await admin?.end().catch(() => {});
      await store.drop();
    });

    it("a payment batch chosen as a deadlock victim is retried: no member of it fails, not even the one that did not deadlock", async () => {
      const db: Db = await openDatabase({ mysqlUrl: store.mysqlUrl, sqliteFile: "", poolSize: 8 }, paymentMigrations);
      try {
        const buffer = new MemoryCreditBuffer();
        const settlement = new Settlement(db, buffer, clock, silentLogger, { chunkSize: 100, sweepEvery: 10, leaseMs: 60_000 });
        const service = createPaymentService({ db, buffer, settlement, clock, logger: silentLogger, exportBatchSize: 100, requestTimeMaxAheadSeconds: readPaymentConfig(NO_ENV).requestTimeMaxAheadSeconds });
        const ctx = { signal: new AbortController().signal } as HandlerContext;
        admin = await mysql.createConnection(store.mysqlUrl!);
        // A heavy transaction (many rows changed), so that InnoDB picks the batch as the victim.
        await admin.query("CREATE TABLE ballast (id INT PRIMARY KEY)");
        const y = payRequest("victim-y", 111n);
        const x = payRequest("victim-x", 222n);
        await admin.query("BEGIN");
        await admin.query(`INSERT INTO ballast (id) VALUES ${Array.from({ length: 500 }, (_, i) => `(${i})`).join(",")}`);
        await admin.query(INSERT_ORDER, orderRow(x, "19700101000000000001"));
        const before = await deadlocksSoFar(admin);
        // Two calls in one turn of the event loop: one batch, [y, x]. y is inserted, x waits for
        // this session's uncommitted x.
        const answers = Promise.allSettled([service.pay(create(PayRequestSchema, y), ctx), service.pay(create(PayRequestSchema, x), ctx)]);
        await waitFor("the batch to wait for the lock on x", async () => (await ordersInsertsUnderWay(admin)) > 0);
        // The insert of y takes no time; the statement is now waiting for x.
        await new Promise((r) => setTimeout(r, 200));
        // Now this session wants y, which the batch holds: a deadlock, and the batch is the victim.
        await admin.query(INSERT_ORDER, orderRow(y, "19700101000000000002"));
        expect(await deadlocksSoFar(admin), "a deadlock happened").to.be.greaterThan(before);
        await admin.query("ROLLBACK");
        const settled = await answers;
        for (const [i, s] of settled.entries()) {
          expect(s.status, `call ${i}: ${s.status === "rejected" ? String(s.reason) : ""}`).to.equal("fulfilled");
          const r = (s as PromiseFulfilledResult<PayResponse>).value;
          expect(r.responseCode).to.equal("SUCCESS");
          expect(r.requestId).to.equal([y, x][i]!.requestId);
        }
        expect(await countRows(db.knex, "payment_orders")).to.equal(2);
      } finally {
        await db.close();
      }
    });

    it("the same Pay through two instances behind a third session that rolls back: the deadlock victim gets the stored answer", async () => {
      const prefix = uniqueName("tp");
      const instances: { system: PaymentSystem; client: GrpcClientHandle<typeof PaymentService> }[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          const system = await startPaymentSystem(paymentConfig(backend, store, prefix), silentLogger);
          instances.push({ system, client: createGrpcClient(PaymentService, system.server.grpcAddress) });
        }
        admin = await mysql.createConnection(store.mysqlUrl!);
        {
          const round = 0;
          const req = payRequest("same", 500n + BigInt(round));
          // This session inserts the request first; both instances' single inserts wait for it
          // (a shared lock on the duplicate key), and when it rolls back, each holds the shared
          // lock and wants the exclusive one: InnoDB's documented three-session deadlock.
          await admin.query("BEGIN");
          await admin.query(INSERT_ORDER, orderRow(req, `1970010100000000${String(round).padStart(4, "0")}`));
          const before = await deadlocksSoFar(admin);
          const calls = Promise.allSettled(instances.map((i) => i.client.client.pay(req)));
          await waitFor("both instances to wait for the lock", async () => (await ordersInsertsUnderWay(admin)) >= 2);
          await admin.query("ROLLBACK");
          const answers = await calls;
          await waitFor("the deadlock to be counted", async () => (await deadlocksSoFar(admin)) > before, 5000).catch(() => {});
          expect(await deadlocksSoFar(admin), `round ${round}: a deadlock happened`).to.be.greaterThan(before);
          const ids = new Set<string>();
          for (const [i, s] of answers.entries()) {
            expect(s.status, `instance ${i}: ${s.status === "rejected" ? String(s.reason) : ""}`).to.equal("fulfilled");
            const r = (s as PromiseFulfilledResult<PayResponse>).value;
            expect(r.responseCode).to.equal("SUCCESS");
            ids.add(r.responseId);
          }
          expect(ids.size, "one stored answer").to.equal(1);
          expect(await countRows(instances[0]!.system.db.knex, "payment_orders", { request_id: req.requestId })).to.equal(1);
        }
      } finally {
        for (const i of instances) {
          i.client.close();
          await i.system.close();
        }
        await deleteRedisKeys(backend.redisUrl!, prefix);
      }
    });

    it("two instances paying the same request_ids in opposite orders: every caller gets SUCCESS and the one stored answer", async function () {
      this.timeout(240_000);
      const prefix = uniqueName("tp");
      const instances: { system: PaymentSystem; client: GrpcClientHandle<typeof PaymentService> }[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          const system = await startPaymentSystem(paymentConfig(backend, store, prefix), silentLogger);
          instances.push({ system, client: createGrpcClient(PaymentService, system.server.grpcAddress) });
        }
        const [a, b] = instances as [(typeof instances)[number], (typeof instances)[number]];
        const failures: string[] = [];
        const answers = new Map<string, Set<string>>();
        let calls = 0;
        for (let round = 0; round < 2; round++) {
          // The same 300 requests through both instances, one in order, one in reverse, each
          // request three times per instance: multi-row batches that overlap in opposite orders.
          const requests = Array.from({ length: 300 }, (_, i) => payRequest(`opp${i % 25}`, BigInt(1 + i)));
          // Runs of the same request (as 50 identical Pays split over two instances would be).
          const order = requests.flatMap((r, i) => Array.from({ length: i % 40 === 0 ? 25 : 3 }, () => r));
          const reverse = [...order].reverse();
          const run = (via: typeof a, list: typeof order) =>
            inParallel(list.length, 96, async (i) => {
              const req = list[i]!;
              calls++;
              try {
                const r = await via.client.client.pay(req);
                if (r.responseCode !== "SUCCESS") failures.push(`${req.requestId}: ${r.responseCode} ${r.responseMsg}`);
                const seen = answers.get(req.requestId) ?? new Set<string>();
                seen.add(r.responseId);
                answers.set(req.requestId, seen);
              } catch (err) {
                const e = ConnectError.from(err);
                failures.push(`${req.requestId}: ${Code[e.code]} ${e.rawMessage}`);
              }
            });
          await Promise.all([run(a, order), run(b, reverse)]);
        }
        expect(failures.slice(0, 10), `${failures.length} of ${calls} calls failed`).to.deep.equal([]);
        for (const [id, seen] of answers) expect(seen.size, `${id} answered with ${[...seen].join(", ")}`).to.equal(1);
        expect(await countRows(a.system.db.knex, "payment_orders")).to.equal(600);
      } finally {
        for (const i of instances) {
          i.client.close();
          await i.system.close();
        }
        await deleteRedisKeys(backend.redisUrl!, prefix);
      }
    });

    it("withdrawals and settlements through two instances while both take payments: no call fails for contention", async function () {
      this.timeout(240_000);
      const prefix = uniqueName("tp");
      const instances: { system: PaymentSystem; client: GrpcClientHandle<typeof PaymentService> }[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          const system = await startPaymentSystem(paymentConfig(backend, store, prefix, { settleChunkSize: 3 }), silentLogger);
          instances.push({ system, client: createGrpcClient(PaymentService, system.server.grpcAddress) });
        }
        const [a, b] = instances as [(typeof instances)[number], (typeof instances)[number]];
        for (let i = 0; i < 12; i++) await a.client.client.pay(payRequest(`w${i}`, 100_000n));
        await a.client.client.settle({ fullSweep: true });
        const failures: string[] = [];
        const note = (err: unknown) => {
          const e = ConnectError.from(err);
          failures.push(`${Code[e.code]} ${e.rawMessage}`);
        };
        let stop = false;
        const settlers = [a, b].map(async (via) => {
          while (!stop) await via.client.client.settle({ fullSweep: true }).catch(note);
        });
        let withdrawn = 0n;
        const paid = new Map<string, bigint>();
        await inParallel(1200, 96, async (i) => {
          const via = i % 2 === 0 ? a : b;
          const account = `w${(i * 7) % 12}`;
          try {
            if (i % 3 === 0) {
              const r = await via.client.client.withdraw(withdrawRequest(account, 50n));
              if (r.responseCode === "SUCCESS") withdrawn += 50n;
            } else {
              const req = payRequest(account, 10n);
              const r = await via.client.client.pay(req);
              expect(r.responseCode).to.equal("SUCCESS");
              paid.set(account, (paid.get(account) ?? 0n) + 10n);
            }
          } catch (err) {
            note(err);
          }
        });
        stop = true;
        await Promise.all(settlers);
        await a.client.client.settle({ fullSweep: true });
        expect(failures.slice(0, 10), `${failures.length} calls failed`).to.deep.equal([]);
        let total = 0n;
        for (let i = 0; i < 12; i++) total += await storedBalance(a.system.db.knex, `w${i}`);
        const credited = [...paid.values()].reduce((s, v) => s + v, 0n);
        expect(total).to.equal(12n * 100_000n + credited - withdrawn);
      } finally {
        for (const i of instances) {
          i.client.close();
          await i.system.close();
        }
        await deleteRedisKeys(backend.redisUrl!, prefix);
      }
    });
  });
}

/**
 * Holds the write lock of an SQLite file from another process for `ms`, as a second process on
 * the same file (an operator's sqlite3 session, a backup) would. Resolves once the lock is held.
 */
async function holdSqliteWriteLock(file: string, ms: number): Promise<{ done: Promise<void> }> {
  const script = `const D = require("better-sqlite3"); const db = new D(${JSON.stringify(file)}); db.exec("BEGIN IMMEDIATE");
    process.stdout.write("locked\\n"); setTimeout(() => { db.exec("COMMIT"); db.close(); }, ${ms});`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  const done = new Promise<void>((resolve, reject) => child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`lock holder exited ${code}`)))));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once("data", () => resolve());
    child.once("exit", (code) => reject(new Error(`lock holder exited ${code} before locking`)));
  });
  return { done };
}

describe("lock contention on SQLite files [embedded]", () => {
  let p: Platform;
  beforeEach(async () => {
    p = await startPlatform({ name: "embedded" });
  });
  afterEach(async () => p?.close());

  const fileOf = (knex: Knex) => (knex.client.config as { connection: { filename: string } }).connection.filename;

  // The embedded database waits about 10 s (busy_timeout; a little more in WAL mode) for
  // another process's write lock, and better-sqlite3 waits synchronously; a lock held 14 s makes
  // the write meet SQLITE_BUSY once, and its retry then succeeds.
  it("a Pay whose write finds the payment database locked by another process past its busy wait succeeds", async function () {
    this.timeout(60_000);
    const lock = await holdSqliteWriteLock(fileOf(p.payment.db.knex), 14_000);
    const req = payRequest("busy", 42n);
    const r = await p.paymentClient.pay(req);
    await lock.done;
    expect(r.responseCode).to.equal("SUCCESS");
    expect(await countRows(p.payment.db.knex, "payment_orders", { request_id: req.requestId })).to.equal(1);
  });

  it("a merchant Pay whose order write finds the merchant database locked by another process past its busy wait succeeds", async function () {
    this.timeout(60_000);
    const lock = await holdSqliteWriteLock(fileOf(p.merchant.db.knex), 14_000);
    const { order } = await p.merchantClient.pay({ salerId: "busy", totalFee: 43n });
    await lock.done;
    expect(order?.state).to.equal("SUCCESS");
    expect(await countRows(p.merchant.db.knex, "merchant_orders", { request_id: order!.requestId, state: "SUCCESS" })).to.equal(1);
  });
});

describe("lock contention: retries and the answer when they run out", () => {
  it("a write that meets a busy SQLite file is run again once the other writer commits", async () => {
    const store = freshStore({ name: "embedded" }, "busy");
    const db = await openDatabase({ sqliteFile: store.sqliteFile, poolSize: 1 }, paymentMigrations);
    const other = new Database(store.sqliteFile);
    try {
      other.pragma("busy_timeout = 0");
      // The service's connection waits up to its busy_timeout itself; make that wait short here.
      await db.knex.raw("PRAGMA busy_timeout = 0");
      other.exec("BEGIN IMMEDIATE");
      other.prepare("INSERT INTO settlements (started_time) VALUES ('2026-01-01 00:00:00')").run();
      setTimeout(() => other.exec("COMMIT"), 150);
      let attempts = 0;
      await retryOnContention(async () => {
        attempts++;
        await db.knex("settlements").insert({ started_time: "2026-01-01 00:00:01" });
      }, { attempts: 20, baseDelayMs: 20, maxDelayMs: 50 });
      expect(attempts, "attempts").to.be.greaterThan(1);
      expect(await countRows(db.knex, "settlements")).to.equal(2);
    } finally {
      other.close();
      await db.close();
      await store.drop();
    }
  });

  it("contention that outlasts every retry reaches the caller as ABORTED, never INTERNAL", async () => {
    for (const err of [Object.assign(new Error("Deadlock found"), { code: "ER_LOCK_DEADLOCK", errno: 1213 }), Object.assign(new Error("Lock wait timeout"), { code: "ER_LOCK_WAIT_TIMEOUT", errno: 1205 }), Object.assign(new Error("database is locked"), { code: "SQLITE_BUSY" })]) {
      let attempts = 0;
      const caught = await retryOnContention(async () => {
        attempts++;
        throw err;
      }, { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 }).catch((e: unknown) => e);
      expect(attempts).to.equal(3);
      const answer = toClientError(caught);
      expect(Code[answer.code]).to.equal("Aborted");
      expect(answer.rawMessage).to.not.match(/deadlock|lock wait|locked/i);
    }
  });
});
