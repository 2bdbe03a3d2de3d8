/**
 * A merchant instance that stalls (SIGSTOP, as a long GC or VM pause would) while it holds
 * stored, unsent orders, beside a second instance on the same merchant database whose resolver
 * closes those orders once they are old enough. When the stalled instance resumes, nothing it
 * sends late may move money: for every order, the merchant's outcome and the payment system's
 * agree, and reconciliation finds no difference. First with payments, then with refunds of them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import mysql from "mysql2/promise";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import { MSG_CLOSED } from "../../services/merchant/orderSender.js";
import { createGrpcClient } from "../../services/shared/rpc/grpcClient.js";
import { uniqueName } from "../harness.js";
import { databaseUrl, freePort, serviceProcess, sleep, type ManagedProcess } from "./processes.js";
import { deleteRedisKeys, dropDatabases } from "../support/cleanup.js";

const mysqlUrl = process.env.TEST_MYSQL_URL;
const redisUrl = process.env.TEST_REDIS_URL;
if (process.env.REQUIRE_REAL_BACKENDS === "1" && !(mysqlUrl && redisUrl)) {
  throw new Error("REQUIRE_REAL_BACKENDS=1 but TEST_MYSQL_URL and TEST_REDIS_URL are not both set");
}

const ORDERS = 2_500;
const REFUNDS = 1_200;
const CONCURRENCY = 200;
const CLOSE_AFTER_SECONDS = 3;

if (!mysqlUrl || !redisUrl) {
  describe("a stalled merchant instance (skipped: TEST_MYSQL_URL and TEST_REDIS_URL are not set; two merchant processes need a shared MySQL database)", () => {
    it("needs TEST_MYSQL_URL and TEST_REDIS_URL");
  });
} else {
  describe("a stalled merchant instance [mariadb+redis]", function () {
    this.timeout(240_000);
    const paymentDb = uniqueName("t_stall_payment");
    const merchantDb = uniqueName("t_stall_merchant");
    const prefix = uniqueName("stall");
    const reconDir = mkdtempSync(join(tmpdir(), "stall-recon-"));
    const processes: ManagedProcess[] = [];
    const closers: (() => void)[] = [];
    let merchantPool: mysql.Pool;
    let paymentPool: mysql.Pool;

    after(async () => {
      for (const c of closers) c();
      await Promise.all(processes.map((p) => p.stop(5_000)));
      await merchantPool?.end();
      await paymentPool?.end();
      await dropDatabases(mysqlUrl, [paymentDb, merchantDb]);
      await deleteRedisKeys(redisUrl, prefix);
      rmSync(reconDir, { recursive: true, force: true });
    });

    async function rows<R>(pool: mysql.Pool, sql: string, params: unknown[] = []): Promise<R[]> {
      const [r] = await pool.query(sql, params);
      return r as R[];
    }

    async function openOrders(): Promise<number> {
      const [r] = await rows<{ n: number }>(merchantPool, "SELECT COUNT(*) AS n FROM merchant_orders WHERE state IN ('INIT', 'UNKNOWN')");
      return Number(r!.n);
    }

    async function until(what: string, check: () => Promise<boolean>, withinMs: number): Promise<void> {
      const end = Date.now() + withinMs;
      while (!(await check())) {
        if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
        await sleep(200);
      }
    }

    it("closes the orders it held at the payment system; its late sends move no money; both sides agree on every order", async () => {
      const [pg, ph, ag, ah, bg, bh, rg, rh] = (await Promise.all(Array.from({ length: 8 }, freePort))) as [number, number, number, number, number, number, number, number];
      const paymentAddress = `127.0.0.1:${pg}`;
      const payment = serviceProcess("payment", {
        HOST: "127.0.0.1",
        PAYMENT_GRPC_PORT: String(pg),
        PAYMENT_HTTP_PORT: String(ph),
        PAYMENT_MYSQL_URL: databaseUrl(mysqlUrl, paymentDb),
        REDIS_URL: redisUrl,
        PAYMENT_REDIS_PREFIX: prefix,
        SETTLE_CRON: "* * * * * *",
      });
      const merchantEnv = (grpc: number, http: number, resolving: boolean) => ({
        HOST: "127.0.0.1",
        MERCHANT_GRPC_PORT: String(grpc),
        MERCHANT_HTTP_PORT: String(http),
        MERCHANT_MYSQL_URL: databaseUrl(mysqlUrl, merchantDb),
        PAYMENT_ADDRESS: paymentAddress,
        PAYMENT_CALL_TIMEOUT_MS: "3000",
        RESOLVE_CRON: resolving ? "* * * * * *" : "off",
        RESOLVE_INIT_AFTER_SECONDS: "2",
        CLOSE_UNKNOWN_AFTER_SECONDS: String(CLOSE_AFTER_SECONDS),
      });
      const stalling = serviceProcess("merchant", merchantEnv(ag, ah, false));
      const resolver = serviceProcess("merchant", merchantEnv(bg, bh, true));
      const recon = serviceProcess("recon", {
        HOST: "127.0.0.1",
        RECON_GRPC_PORT: String(rg),
        RECON_HTTP_PORT: String(rh),
        MERCHANT_ADDRESS: `127.0.0.1:${bg}`,
        PAYMENT_ADDRESS: paymentAddress,
        RECON_DIR: reconDir,
        RECON_CUTOFF_LAG_SECONDS: "0",
      });
      processes.push(payment, stalling, resolver, recon);
      await payment.start();
      await Promise.all([stalling.start(), resolver.start(), recon.start()]);
      merchantPool = mysql.createPool({ uri: databaseUrl(mysqlUrl, merchantDb), connectionLimit: 2, supportBigNumbers: true, bigNumberStrings: true });
      paymentPool = mysql.createPool({ uri: databaseUrl(mysqlUrl, paymentDb), connectionLimit: 2, supportBigNumbers: true, bigNumberStrings: true });
      const a = createGrpcClient(MerchantService, `127.0.0.1:${ag}`);
      const p = createGrpcClient(PaymentService, paymentAddress);
      const r = createGrpcClient(ReconService, `127.0.0.1:${rg}`);
      closers.push(a.close, p.close, r.close);

      // Payments through the instance that will stall; callers wait as long as the stall lasts.
      let next = 0;
      const answered = { ok: 0, failed: 0 };
      const load = Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          for (;;) {
            const i = next++;
            if (i >= ORDERS) return;
            try {
              await a.client.pay({ salerId: `stall${i % 8}`, totalFee: BigInt(1 + ((i * 7919) % 5_000)) }, { timeoutMs: 120_000 });
              answered.ok++;
            } catch {
              answered.failed++;
            }
          }
        }),
      );

      // Two stalls in the middle of the load, each long enough for the other instance to close
      // every order the stalled one had stored and not yet sent.
      let stalls = 0;
      const storedOrders = async () => {
        const [c] = await rows<{ n: number }>(merchantPool, "SELECT COUNT(*) AS n FROM merchant_orders");
        return Number(c!.n);
      };
      const stallWhenStored = async (storedBefore: number) => {
        await until(`${storedBefore} orders are stored`, async () => (await storedOrders()) >= storedBefore, 60_000);
        // The stall lands while the instance's new orders wait to be inserted (a gap lock past
        // the last order holds inserts back; answers are still recorded): they commit while it
        // is stopped, so it holds stored orders it has not sent.
        const locker = await mysql.createConnection(databaseUrl(mysqlUrl, merchantDb));
        await locker.query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ");
        await locker.query("START TRANSACTION");
        const [[last]] = (await locker.query("SELECT COALESCE(MAX(id), 0) AS id FROM merchant_orders")) as unknown as [{ id: string }[]];
        await locker.query("SELECT id FROM merchant_orders WHERE id > ? FOR UPDATE", [last!.id]);
        await until("the instance's inserts wait for the lock", async () => {
          // Waits on the merchant database only: the payment system's own lock waits (refunds of
          // one payment queue on its row) say nothing about the merchant's inserts.
          const [w] = await rows<{ n: number }>(
            merchantPool,
            `SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
              WHERE t.trx_state = 'LOCK WAIT' AND p.DB = ?`,
            [merchantDb],
          );
          return Number(w!.n) > 0;
        }, 20_000);
        await sleep(100);
        stalling.pause();
        await locker.query("COMMIT");
        await locker.end();
        stalls++;
        const stalledAt = Date.now();
        await sleep(300);
        await until("the other instance resolved every open order", async () => (await openOrders()) === 0 && Date.now() - stalledAt > (CLOSE_AFTER_SECONDS + 2) * 1000, 60_000);
        stalling.resume();
      };
      for (const storedBefore of [400, 1_200]) await stallWhenStored(storedBefore);
      await load;
      await until("no open orders are left", async () => (await openOrders()) === 0, 60_000);

      // Every order: the merchant's outcome against the payment system's record of it.
      const merchantOrders = await rows<{ request_id: string; state: string; amount: string; response_msg: string | null }>(
        merchantPool,
        "SELECT request_id, state, amount, response_msg FROM merchant_orders",
      );
      const paymentOrders = await rows<{ request_id: string; response_code: string; total_fee: string }>(
        paymentPool,
        "SELECT request_id, response_code, total_fee FROM payment_orders",
      );
      const atPayment = new Map(paymentOrders.map((o) => [o.request_id, o]));
      let closedByMerchant = 0;
      const disagreements: string[] = [];
      for (const o of merchantOrders) {
        const paid = atPayment.get(o.request_id);
        if (o.state === "SUCCESS") {
          if (paid?.response_code !== "SUCCESS" || paid.total_fee !== o.amount) disagreements.push(`${o.request_id} SUCCESS at the merchant, ${paid?.response_code ?? "absent"} at the payment system`);
        } else if (o.state === "FAIL") {
          if (paid?.response_code === "SUCCESS") disagreements.push(`${o.request_id} FAIL at the merchant, SUCCESS at the payment system (${paid.total_fee} fen)`);
          if (o.response_msg === MSG_CLOSED) {
            closedByMerchant++;
            if (paid?.response_code !== "CLOSED") disagreements.push(`${o.request_id} closed at the merchant, ${paid?.response_code ?? "absent"} at the payment system`);
          }
        } else disagreements.push(`${o.request_id} still ${o.state}`);
      }
      const closedAtPayment = paymentOrders.filter((o) => o.response_code === "CLOSED").length;
      console.log(
        `      ${stalls} stalls; orders ${merchantOrders.length}; callers answered ${answered.ok}, failed ${answered.failed}; ` +
          `closed while held by the stalled instance ${closedByMerchant}; disagreements ${disagreements.length}`,
      );
      expect(disagreements.slice(0, 10)).to.deep.equal([]);
      expect(closedByMerchant, "orders the stalls left stored and unsent, closed by the other instance").to.be.greaterThan(0);
      expect(closedAtPayment).to.equal(closedByMerchant);
      expect(merchantOrders.length).to.equal(ORDERS);

      // Settled, reconciled and audited: nothing only on the payment side, nothing off.
      await until("every credit is settled", async () => {
        const [c] = await rows<{ n: number }>(paymentPool, "SELECT COUNT(*) AS n FROM payment_orders WHERE settlement_id IS NULL");
        return Number(c!.n) === 0;
      }, 60_000);

      // Refunds of the successful payments through the instance that stalls, stalled once more.
      const refundable = merchantOrders.filter((o) => o.state === "SUCCESS");
      const storedAtRefunds = await storedOrders();
      let nextRefund = 0;
      // A refund of more than the merchant has left of its payment is refused before it is stored.
      const refundsAnswered = { ok: 0, refused: 0, failed: 0 };
      const refundLoad = Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          for (;;) {
            const i = nextRefund++;
            if (i >= REFUNDS) return;
            const paid = refundable[(i * 7919) % refundable.length]!;
            try {
              await a.client.refund({ paymentRequestId: paid.request_id, refundFee: BigInt(1 + (i % 7)) }, { timeoutMs: 120_000 });
              refundsAnswered.ok++;
            } catch (err) {
              const e = ConnectError.from(err);
              if (e.code === Code.FailedPrecondition && e.rawMessage.startsWith("refund_fee: ")) refundsAnswered.refused++;
              else refundsAnswered.failed++;
            }
          }
        }),
      );
      await stallWhenStored(storedAtRefunds + 400);
      await refundLoad;
      await until("no open orders are left", async () => (await openOrders()) === 0, 60_000);
      const merchantRefunds = await rows<{ request_id: string; state: string; amount: string; response_msg: string | null }>(
        merchantPool,
        "SELECT request_id, state, amount, response_msg FROM merchant_orders WHERE order_type = 'REFUND'",
      );
      const paymentRefunds = await rows<{ request_id: string; response_code: string; refund_fee: string }>(
        paymentPool,
        "SELECT request_id, response_code, refund_fee FROM refund_orders",
      );
      const refundAtPayment = new Map(paymentRefunds.map((o) => [o.request_id, o]));
      let refundsClosed = 0;
      const refundDisagreements: string[] = [];
      for (const o of merchantRefunds) {
        const done = refundAtPayment.get(o.request_id);
        if (o.state === "SUCCESS") {
          if (done?.response_code !== "SUCCESS" || done.refund_fee !== o.amount) refundDisagreements.push(`refund ${o.request_id} SUCCESS at the merchant, ${done?.response_code ?? "absent"} at the payment system`);
        } else if (o.state === "FAIL") {
          if (done?.response_code === "SUCCESS") refundDisagreements.push(`refund ${o.request_id} FAIL at the merchant, SUCCESS at the payment system (${done.refund_fee} fen)`);
          if (o.response_msg === MSG_CLOSED) {
            refundsClosed++;
            if (done?.response_code !== "CLOSED") refundDisagreements.push(`refund ${o.request_id} closed at the merchant, ${done?.response_code ?? "absent"} at the payment system`);
          }
        } else refundDisagreements.push(`refund ${o.request_id} still ${o.state}`);
      }
      // Every payment's refunded sum is its successful refunds, and never more than the payment.
      const overRefunded = await rows<{ response_id: string }>(
        paymentPool,
        `SELECT p.response_id FROM payment_orders p
           LEFT JOIN (SELECT payment_response_id, SUM(refund_fee) AS s FROM refund_orders WHERE response_code = 'SUCCESS' GROUP BY payment_response_id) r
             ON r.payment_response_id = p.response_id
          WHERE p.refunded <> COALESCE(r.s, 0) OR p.refunded > p.total_fee`,
      );
      console.log(
        `      refunds ${merchantRefunds.length}; callers answered ${refundsAnswered.ok}, refused ${refundsAnswered.refused}, failed ${refundsAnswered.failed}; ` +
          `closed while held by the stalled instance ${refundsClosed}; disagreements ${refundDisagreements.length}`,
      );
      expect(refundDisagreements.slice(0, 10)).to.deep.equal([]);
      expect(overRefunded).to.deep.equal([]);
      expect(refundsClosed, "refunds the stall left stored and unsent, closed by the other instance").to.be.greaterThan(0);
      expect(paymentRefunds.filter((o) => o.response_code === "CLOSED").length).to.equal(refundsClosed);
      expect(merchantRefunds.length).to.equal(REFUNDS - refundsAnswered.refused);
      expect(refundsAnswered.refused, "refunds refused for more than is left").to.be.lessThan(REFUNDS / 10);

      const { run } = await r.client.reconcile({});
      for (const d of run!.diffs) {
        expect(d.f113Count, "orders only at the payment system").to.equal(0n);
        expect(d.f114Count, "orders only at the merchant").to.equal(0n);
        expect(d.f115Count, "amounts that differ").to.equal(0n);
      }
      expect(run!.balanced).to.equal(true);
      const audit = (await r.client.audit({})).run!;
      expect(audit.balanced, "every account's balance equals the merchant's successful payments less its refunds").to.equal(true);
      expect(payment.crashes.concat(stalling.crashes, resolver.crashes, recon.crashes)).to.deep.equal([]);
    });
  });
}
