/**
 * Refunds (退款): all or part of one successful payment, out of the settled balance. Refunds of
 * one payment never add up to more than it and a balance never goes below zero, whatever runs
 * concurrently, on one instance or several.
 */
import { expect } from "chai";
import type { Knex } from "knex";
import { Code, type Client } from "@connectrpc/connect";
import { PaymentService, type PayResponse, type RefundRequest } from "../../gen/payment/v1/payment_pb.js";
import {
  MSG_REFUND_CLOSED,
  MSG_REFUND_EXCEEDS_PAYMENT,
  MSG_REFUND_INSUFFICIENT_BALANCE,
  MSG_REFUND_NO_PAYMENT,
  MSG_REFUND_OTHER_ACCOUNT,
} from "../../services/payment/refunds.js";
import { backends } from "../harness.js";
import {
  countRows,
  inParallel,
  MSG_INSUFFICIENT_BALANCE,
  paymentInstances,
  payRequest,
  refundRequest,
  refusal,
  settleLoop,
  storedBalance,
  withdrawRequest,
} from "./fixtures.js";
import { requestIdentity } from "../support/requestIdentity.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

/**
 * The rows of every INSERT into refund_orders that `knex` sends (rolled back or not): refunds
 * written together show as one statement of several rows.
 */
function refundInserts(knex: Knex): { rows: number[]; stop(): void } {
  const rows: number[] = [];
  const listener = (q: { sql: string; bindings?: unknown[] }) => {
    if (/^insert into refund_orders/i.test(q.sql)) rows.push((q.bindings?.length ?? 0) / 9);
  };
  knex.on("query", listener);
  return { rows, stop: () => void knex.removeListener("query", listener) };
}

/** Polls the refunded sums of the given payments until stopped; answers the highest read of each. */
function watchRefunded(knex: Knex, responseIds: string[]): { stop(): Promise<Map<string, bigint>> } {
  let stopped = false;
  const highest = new Map<string, bigint>();
  const loop = (async () => {
    while (!stopped) {
      const rows = (await knex("payment_orders").whereIn("response_id", responseIds).select("response_id", "refunded")) as { response_id: string; refunded: unknown }[];
      for (const r of rows) {
        const v = BigInt(String(r.refunded));
        if (v > (highest.get(r.response_id) ?? -1n)) highest.set(r.response_id, v);
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return highest;
    },
  };
}

/** The stored refunded sum of a payment. */
async function refundedOf(knex: Knex, responseId: string): Promise<bigint> {
  const row = (await knex("payment_orders").where({ response_id: responseId }).first("refunded")) as { refunded: unknown };
  return BigInt(String(row.refunded));
}


for (const backend of backends()) {
  describe(`refunds [${backend.name}]`, () => {
    const { instance } = paymentInstances(backend, "refund");

    /** A settled payment of `fee` to `salerId`. */
    async function settledPayment(client: Client<typeof PaymentService>, salerId: string, fee: bigint): Promise<PayResponse> {
      const paid = await client.pay(payRequest(salerId, fee));
      expect(paid.responseCode).to.equal("SUCCESS");
      await client.settle({ fullSweep: true });
      return paid;
    }

    it("refunds a payment in parts up to its total, out of the settled balance, and refuses the rest", async () => {
      const { system, client, orders } = await instance();
      const paid = await settledPayment(client, "rf-a", 1_000n);
      await settledPayment(client, "rf-a", 5_000n);
      const first = await client.refund(refundRequest("rf-a", paid, 300n));
      expect(first).to.include({ responseCode: "SUCCESS", responseMsg: "OK", refundFee: 300n, paymentResponseId: paid.responseId, salerId: "rf-a" });
      expect(first.responseId).to.match(/^\d{20}$/);
      expect(await storedBalance(system.db.knex, "rf-a")).to.equal(5_700n);
      const rest = await client.refund(refundRequest("rf-a", paid, 700n));
      expect(rest.responseCode).to.equal("SUCCESS");
      // 1,000 refunded of a 1,000 payment: one fen more is refused, whatever the balance.
      const more = await client.refund(refundRequest("rf-a", paid, 1n));
      expect(more).to.include({ responseCode: "FAIL", responseMsg: MSG_REFUND_EXCEEDS_PAYMENT });
      expect(await storedBalance(system.db.knex, "rf-a")).to.equal(5_000n);

      const query = await client.queryOrder({ requestId: first.requestId });
      expect(query.found).to.equal(true);
      expect(query.orderType).to.equal(OrderType.REFUND);
      expect(query.order.case).to.equal("refund");
      expect(query.order.value).to.deep.include({ responseId: first.responseId, refundFee: 300n });

      const exported: { requestId: string; amount: bigint }[] = [];
      for await (const b of orders.exportOrders({ orderType: OrderType.REFUND })) exported.push(...b.orders);
      expect(exported.map((o) => [o.requestId, o.amount])).to.have.deep.members([
        [first.requestId, 300n],
        [rest.requestId, 700n],
      ]);
    });

    it("refuses with its own message a refund of an unknown payment, of another account's payment, and one the balance does not cover; none moves money", async () => {
      const { system, client } = await instance();
      const mine = await settledPayment(client, "rf-b", 800n);
      await settledPayment(client, "rf-c", 100n);
      expect(await client.withdraw(withdrawRequest("rf-b", 750n))).to.include({ responseCode: "SUCCESS" });

      const unknown = await client.refund({ ...requestIdentity(), salerId: "rf-b", paymentResponseId: "20190829171520999999", refundFee: 10n });
      expect(unknown).to.include({ responseCode: "FAIL", responseMsg: MSG_REFUND_NO_PAYMENT });
      const other = await client.refund(refundRequest("rf-c", mine, 10n));
      expect(other).to.include({ responseCode: "FAIL", responseMsg: MSG_REFUND_OTHER_ACCOUNT });
      const uncovered = await client.refund(refundRequest("rf-b", mine, 60n));
      expect(uncovered).to.include({ responseCode: "FAIL", responseMsg: MSG_REFUND_INSUFFICIENT_BALANCE });
      // The uncovered refund handed its share of the payment back: 50 still fits afterwards.
      expect(await storedBalance(system.db.knex, "rf-b")).to.equal(50n);
      expect(await storedBalance(system.db.knex, "rf-c")).to.equal(100n);
      expect((await client.refund(refundRequest("rf-b", mine, 50n))).responseCode).to.equal("SUCCESS");
      expect(await storedBalance(system.db.knex, "rf-b")).to.equal(0n);
      expect(await countRows(system.db.knex, "refund_orders", { response_code: "FAIL" })).to.equal(3);
    });

    it("is idempotent by request_id: a retry gets the stored answer, another body is refused; a closed refund moves nothing", async () => {
      const { system, client } = await instance();
      const paid = await settledPayment(client, "rf-d", 500n);
      const req = refundRequest("rf-d", paid, 200n);
      const once = await client.refund(req);
      const again = await client.refund(req);
      expect(again).to.deep.equal(once);
      const conflict = await refusal(client.refund({ ...req, refundFee: 201n }));
      expect(conflict.code).to.equal(Code.AlreadyExists);
      expect(await storedBalance(system.db.knex, "rf-d")).to.equal(300n);

      const closing = refundRequest("rf-d", paid, 100n);
      expect((await client.closeOrder({ requestId: closing.requestId, orderType: OrderType.REFUND })).closed).to.equal(true);
      expect(await client.refund(closing)).to.include({ responseCode: "FAIL", responseMsg: MSG_REFUND_CLOSED });
      expect(await storedBalance(system.db.knex, "rf-d")).to.equal(300n);
      const late = await client.closeOrder({ requestId: req.requestId, orderType: OrderType.REFUND });
      expect(late.closed).to.equal(false);
      expect(late.order.case).to.equal("refund");
    });

    it("refuses a malformed refund naming the field, and writes nothing", async () => {
      const { system, client } = await instance();
      const paid = await settledPayment(client, "rf-e", 500n);
      const cases: [Partial<RefundRequest>, RegExp][] = [
        [{ refundFee: 0n }, /^refund_fee: /],
        [{ refundFee: -5n }, /^refund_fee: /],
        [{ refundFee: 10n ** 12n + 1n }, /^refund_fee: /],
        [{ paymentResponseId: "abc" }, /^payment_response_id: /],
        [{ paymentResponseId: "" }, /^payment_response_id: /],
        [{ salerId: "" }, /^saler_id: /],
        [{ requestId: "1" }, /^request_id: /],
      ];
      for (const [patch, message] of cases) {
        const e = await refusal(client.refund({ ...refundRequest("rf-e", paid, 10n), ...patch }));
        expect(e.code, JSON.stringify(Object.keys(patch))).to.equal(Code.InvalidArgument);
        expect(e.rawMessage).to.match(message);
      }
      expect(await countRows(system.db.knex, "refund_orders")).to.equal(0);
      expect(await storedBalance(system.db.knex, "rf-e")).to.equal(500n);
    });

    it("50 concurrent refunds of 10 fen against a 100-fen payment: exactly 10 succeed, across instances", async () => {
      const a = await instance();
      const b = backend.mysqlUrl ? await instance() : a;
      const paid = await settledPayment(a.client, "rf-race", 100n);
      await settledPayment(a.client, "rf-race", 10_000n);
      const answers = await inParallel(50, 50, (i) => (i % 2 === 0 ? a : b).client.refund(refundRequest("rf-race", paid, 10n)));
      const ok = answers.filter((r) => r.responseCode === "SUCCESS").length;
      expect(ok).to.equal(10);
      expect(answers.filter((r) => r.responseMsg === MSG_REFUND_EXCEEDS_PAYMENT)).to.have.length(40);
      expect(await storedBalance(a.system.db.knex, "rf-race")).to.equal(10_000n);
    });

    it("refunds and withdrawals racing for one balance: it never goes below zero, and every success is paid out of it", async () => {
      const a = await instance();
      const b = backend.mysqlUrl ? await instance() : a;
      const payments: PayResponse[] = [];
      for (let i = 0; i < 10; i++) payments.push(await a.client.pay(payRequest("rf-bal", 100n)));
      await a.client.settle({ fullSweep: true });
      // 1,000 on the balance; 2,000 asked for by refunds and withdrawals together.
      const answers = await inParallel(40, 40, async (i) => {
        const via = (i % 2 === 0 ? a : b).client;
        if (i % 4 < 2) return { fee: 50n, code: (await via.refund(refundRequest("rf-bal", payments[i % 10]!, 50n))).responseCode };
        return { fee: 50n, code: (await via.withdraw(withdrawRequest("rf-bal", 50n))).responseCode };
      });
      const paidOut = answers.filter((r) => r.code === "SUCCESS").reduce((s, r) => s + r.fee, 0n);
      expect(paidOut).to.equal(1_000n);
      expect(await storedBalance(a.system.db.knex, "rf-bal")).to.equal(0n);
      const [row] = (await a.system.db.knex("payment_orders").where({ saler_id: "rf-bal" }).sum({ s: "refunded" })) as { s: unknown }[];
      const refundedTotal = BigInt(String(row!.s));
      const refundsOk = await countRows(a.system.db.knex, "refund_orders", { response_code: "SUCCESS" });
      expect(refundedTotal).to.equal(50n * BigInt(refundsOk));
    });

    it("concurrent refunds of varied amounts exceeding one payment: the successes add up to at most it, each refusal did not fit, balance exact to the fen", async () => {
      const { system, client } = await instance();
      const knex = system.db.knex;
      const paid = await settledPayment(client, "rf-over", 10_000n);
      await settledPayment(client, "rf-over", 1_000_000n);
      const inserts = refundInserts(knex);
      const watcher = watchRefunded(knex, [paid.responseId]);
      const fees = Array.from({ length: 120 }, (_, i) => BigInt(37 + ((i * 7919) % 263)));
      const answers = await inParallel(fees.length, 64, (i) => client.refund(refundRequest("rf-over", paid, fees[i]!)));
      const highest = await watcher.stop();
      inserts.stop();

      const ok = answers.filter((a) => a.responseCode === "SUCCESS");
      const refunded = ok.reduce((s, a) => s + a.refundFee, 0n);
      expect(refunded <= 10_000n, `refunded ${refunded}`).to.equal(true);
      expect(ok.length).to.be.greaterThan(0);
      expect(await refundedOf(knex, paid.responseId)).to.equal(refunded);
      expect(highest.get(paid.responseId)! <= 10_000n, `refunded read as ${highest.get(paid.responseId)}`).to.equal(true);
      // A refusal saw less left than its fee, and what is left only ever shrinks.
      for (const a of answers.filter((x) => x.responseCode !== "SUCCESS")) {
        expect(a).to.include({ responseCode: "FAIL", responseMsg: MSG_REFUND_EXCEEDS_PAYMENT });
        expect(a.refundFee > 10_000n - refunded, `refused ${a.refundFee} with ${10_000n - refunded} left`).to.equal(true);
      }
      expect(await storedBalance(knex, "rf-over")).to.equal(1_010_000n - refunded);
      expect(await countRows(knex, "refund_orders", { response_code: "SUCCESS" })).to.equal(ok.length);
      // The calls were written together, several to a statement.
      expect(Math.max(...inserts.rows)).to.be.greaterThan(1);
    });

    it("concurrent refunds that all fit, of several payments and accounts, are written together and all succeed, to the last fen", async () => {
      const { system, client } = await instance();
      const knex = system.db.knex;
      const salers = ["rf-m1", "rf-m2", "rf-m3"];
      const payments: { salerId: string; paid: PayResponse }[] = [];
      for (const salerId of salers) for (let k = 0; k < 3; k++) payments.push({ salerId, paid: await client.pay(payRequest(salerId, 1_000n)) });
      await client.settle({ fullSweep: true });
      const inserts = refundInserts(knex);
      // 90 refunds of 1..33 fen: at most 330 of each 1,000-fen payment.
      const answers = await inParallel(90, 90, (i) => {
        const { salerId, paid } = payments[i % payments.length]!;
        return client.refund(refundRequest(salerId, paid, BigInt(1 + (i % 33))));
      });
      inserts.stop();
      expect(answers.map((a) => a.responseCode)).to.deep.equal(answers.map(() => "SUCCESS"));
      for (const { salerId, paid } of payments) {
        const mine = answers.filter((a) => a.paymentResponseId === paid.responseId).reduce((s, a) => s + a.refundFee, 0n);
        expect(await refundedOf(knex, paid.responseId), salerId).to.equal(mine);
      }
      for (const salerId of salers) {
        const mine = answers.filter((a) => a.salerId === salerId).reduce((s, a) => s + a.refundFee, 0n);
        expect(await storedBalance(knex, salerId), salerId).to.equal(3_000n - mine);
      }
      expect(new Set(answers.map((a) => a.responseId)).size).to.equal(90);
      expect(Math.max(...inserts.rows)).to.be.greaterThan(1);
      expect(inserts.rows.reduce((s, n) => s + n, 0), "a batch that fits is written once").to.equal(90);
    });

    it("concurrent refunds that each fit their payment but together pass the balance: exactly as many succeed as it covers, it ends at zero", async () => {
      const { system, client } = await instance();
      const knex = system.db.knex;
      const payments: PayResponse[] = [];
      for (let i = 0; i < 10; i++) payments.push(await client.pay(payRequest("rf-cover", 100n)));
      await client.settle({ fullSweep: true });
      expect((await client.withdraw(withdrawRequest("rf-cover", 500n))).responseCode).to.equal("SUCCESS");
      const inserts = refundInserts(knex);
      // 20 refunds of 50, two to a payment: each payment takes both, the balance of 500 only ten.
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => client.refund(refundRequest("rf-cover", payments[i % 10]!, 50n))));
      inserts.stop();
      expect(Math.max(...inserts.rows), "the refunds were tried together first").to.be.greaterThan(1);
      expect(answers.filter((a) => a.responseCode === "SUCCESS")).to.have.length(10);
      for (const a of answers.filter((x) => x.responseCode !== "SUCCESS")) expect(a).to.include({ responseCode: "FAIL", responseMsg: MSG_REFUND_INSUFFICIENT_BALANCE });
      expect(await storedBalance(knex, "rf-cover")).to.equal(0n);
      let refunded = 0n;
      for (const p of payments) {
        const mine = answers.filter((a) => a.paymentResponseId === p.responseId && a.responseCode === "SUCCESS").length;
        expect(await refundedOf(knex, p.responseId)).to.equal(50n * BigInt(mine));
        refunded += await refundedOf(knex, p.responseId);
      }
      expect(refunded).to.equal(500n);
    });

    it("a batch one refund of which fails runs each alone: every refund gets its own answer, as alone", async () => {
      const { system, client } = await instance();
      const knex = system.db.knex;
      const big = await settledPayment(client, "rf-f1", 1_000n);
      const small = await settledPayment(client, "rf-f2", 100n);
      const others = await settledPayment(client, "rf-f3", 500n);
      const foreign = await settledPayment(client, "rf-f4", 500n);
      // rf-f2 holds 100 and can give back 100 of its payment; rf-f1 holds 1,000.
      const cases: { req: ReturnType<typeof refundRequest>; code: string; msg: string }[] = [
        { req: refundRequest("rf-f1", big, 100n), code: "SUCCESS", msg: "OK" },
        { req: refundRequest("rf-f1", big, 200n), code: "SUCCESS", msg: "OK" },
        { req: refundRequest("rf-f1", big, 300n), code: "SUCCESS", msg: "OK" },
        { req: { ...requestIdentity(), salerId: "rf-f1", paymentResponseId: "20190829171520999999", refundFee: 5n }, code: "FAIL", msg: MSG_REFUND_NO_PAYMENT },
        { req: refundRequest("rf-f1", foreign, 5n), code: "FAIL", msg: MSG_REFUND_OTHER_ACCOUNT },
        { req: refundRequest("rf-f3", others, 501n), code: "FAIL", msg: MSG_REFUND_EXCEEDS_PAYMENT },
        { req: refundRequest("rf-f3", others, 50n), code: "SUCCESS", msg: "OK" },
        { req: refundRequest("rf-f2", small, 100n), code: "SUCCESS", msg: "OK" },
      ];
      await client.withdraw(withdrawRequest("rf-f2", 1n));
      // Now rf-f2 holds 99: its full refund of 100 fits in the payment but not in the balance.
      cases[7] = { ...cases[7]!, code: "FAIL", msg: MSG_REFUND_INSUFFICIENT_BALANCE };
      const inserts = refundInserts(knex);
      const answers = await Promise.all(cases.map((c) => client.refund(c.req)));
      inserts.stop();
      expect(answers.map((a) => [a.responseCode, a.responseMsg])).to.deep.equal(cases.map((c) => [c.code, c.msg]));
      expect(Math.max(...inserts.rows), "the refunds were tried together first").to.be.greaterThan(1);
      expect(await refundedOf(knex, big.responseId)).to.equal(600n);
      expect(await refundedOf(knex, small.responseId)).to.equal(0n);
      expect(await refundedOf(knex, others.responseId)).to.equal(50n);
      expect(await storedBalance(knex, "rf-f1")).to.equal(400n);
      expect(await storedBalance(knex, "rf-f2")).to.equal(99n);
      expect(await storedBalance(knex, "rf-f3")).to.equal(450n);
      expect(await refundedOf(knex, foreign.responseId)).to.equal(0n);
      expect(await storedBalance(knex, "rf-f4")).to.equal(500n);
      expect(await countRows(knex, "refund_orders", { response_code: "FAIL" })).to.equal(4);
      expect(await countRows(knex, "refund_orders")).to.equal(cases.length);
    });

    it("a batch holding a replay and a closed request_id runs each alone; the same request_id several times in one batch is recorded once; money moves once", async () => {
      const { system, client } = await instance();
      const knex = system.db.knex;
      const paid = await settledPayment(client, "rf-dup", 1_000n);
      const earlier = refundRequest("rf-dup", paid, 10n);
      const stored = await client.refund(earlier);
      const closed = refundRequest("rf-dup", paid, 20n);
      await client.closeOrder({ requestId: closed.requestId, orderType: OrderType.REFUND });

      // A replay and a closed request_id among new refunds: the batch's INSERT meets a duplicate.
      const fresh = Array.from({ length: 6 }, () => refundRequest("rf-dup", paid, 40n));
      const inserts = refundInserts(knex);
      const [freshAnswers, replayed, closedAnswer] = await Promise.all([Promise.all(fresh.map((r) => client.refund(r))), client.refund(earlier), client.refund(closed)]);
      inserts.stop();
      expect(Math.max(...inserts.rows), "the refunds were tried together first").to.be.greaterThan(1);
      for (const a of freshAnswers) expect(a).to.include({ responseCode: "SUCCESS", refundFee: 40n });
      expect(replayed).to.deep.equal(stored);
      expect(closedAnswer).to.include({ responseCode: "FAIL", responseMsg: MSG_REFUND_CLOSED });

      // One request_id five times among new refunds: one order, five identical answers.
      const repeated = refundRequest("rf-dup", paid, 30n);
      const more = Array.from({ length: 4 }, () => refundRequest("rf-dup", paid, 50n));
      const [repeats, moreAnswers] = await Promise.all([Promise.all(Array.from({ length: 5 }, () => client.refund(repeated))), Promise.all(more.map((r) => client.refund(r)))]);
      for (const a of repeats) expect(a).to.deep.equal(repeats[0]);
      expect(repeats[0]).to.include({ responseCode: "SUCCESS", refundFee: 30n });
      for (const a of moreAnswers) expect(a).to.include({ responseCode: "SUCCESS", refundFee: 50n });

      expect(await countRows(knex, "refund_orders", { request_id: repeated.requestId })).to.equal(1);
      expect(await countRows(knex, "refund_orders", { response_code: "SUCCESS" })).to.equal(1 + 6 + 1 + 4);
      expect(await refundedOf(knex, paid.responseId)).to.equal(10n + 240n + 30n + 200n);
      expect(await storedBalance(knex, "rf-dup")).to.equal(1_000n - 480n);
    });

    it("refunds of many payments and accounts racing withdrawals, payments and settlement on two instances: no error, every total exact", async () => {
      const a = await instance();
      const b = backend.mysqlUrl ? await instance() : a;
      const knex = a.system.db.knex;
      const salers = ["rf-x1", "rf-x2", "rf-x3", "rf-x4"];
      const settledPaid: PayResponse[] = [];
      for (let i = 0; i < 16; i++) settledPaid.push(await a.client.pay(payRequest(salers[i % 4]!, 500n + BigInt(i))));
      await a.client.settle({ fullSweep: true });
      const via = (i: number) => (i % 2 === 0 ? a : b).client;
      const settling = settleLoop((r) => via(r.fullSweep ? 0 : 1).settle(r));
      const [credits, refunds, withdrawals] = await Promise.all([
        // Payments that arrive meanwhile (pending, then settled by the loop) are refunded too.
        inParallel(80, 8, async (i) => {
          const r = await via(i).pay(payRequest(salers[i % 4]!, 300n));
          expect(r.responseCode).to.equal("SUCCESS");
          if (i % 2 === 0) settledPaid.push(r);
          return r;
        }),
        inParallel(400, 48, async (i) => {
          const p = settledPaid[(i * 7) % settledPaid.length]!;
          return via(i).refund(refundRequest(p.salerId, p, BigInt(1 + ((i * 13) % 90))));
        }),
        inParallel(200, 24, async (i) => via(i + 1).withdraw(withdrawRequest(salers[i % 4]!, BigInt(1 + ((i * 17) % 120))))),
      ]);
      await settling.stop();
      await a.client.settle({ fullSweep: true });

      for (const r of refunds.filter((x) => x.responseCode !== "SUCCESS")) {
        expect([MSG_REFUND_EXCEEDS_PAYMENT, MSG_REFUND_INSUFFICIENT_BALANCE]).to.include(r.responseMsg);
      }
      for (const w of withdrawals.filter((x) => x.responseCode !== "SUCCESS")) expect(w.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      expect(refunds.filter((r) => r.responseCode === "SUCCESS").length).to.be.greaterThan(0);
      const payments = [...settledPaid.slice(0, 16), ...credits];
      for (const salerId of salers) {
        const paidIn = payments.filter((p) => p.salerId === salerId).reduce((s, p) => s + p.totalFee, 0n);
        const refundedOut = refunds.filter((r) => r.salerId === salerId && r.responseCode === "SUCCESS").reduce((s, r) => s + r.refundFee, 0n);
        const withdrawn = withdrawals.filter((w) => w.salerId === salerId && w.responseCode === "SUCCESS").reduce((s, w) => s + w.withdrawMoney, 0n);
        expect(await storedBalance(knex, salerId), salerId).to.equal(paidIn - refundedOut - withdrawn);
      }
      for (const p of payments) {
        const mine = refunds.filter((r) => r.paymentResponseId === p.responseId && r.responseCode === "SUCCESS").reduce((s, r) => s + r.refundFee, 0n);
        const stored = await refundedOf(knex, p.responseId);
        expect(stored, p.responseId).to.equal(mine);
        expect(stored <= p.totalFee).to.equal(true);
      }
      expect(await countRows(knex, "refund_orders")).to.equal(400);
    });

    it("balances as of a cut-off add back refunds answered after it", async () => {
      const { client } = await instance();
      const paid = await settledPayment(client, "rf-cut", 900n);
      const { responseTime } = await client.refund(refundRequest("rf-cut", paid, 100n));
      // A cut-off one second before the refund: the refund did not happen yet.
      const before = new Date(new Date(`${responseTime.replace(" ", "T")}Z`).getTime() - 1000).toISOString().replace("T", " ").slice(0, 19);
      const asOf = async (cutoffTime: string) => {
        const rows: { salerId: string; balance: bigint }[] = [];
        for await (const b of client.exportBalances({ cutoffTime })) rows.push(...b.balances);
        return rows.find((r) => r.salerId === "rf-cut")!.balance;
      };
      expect(await asOf(responseTime)).to.equal(800n);
      if (paid.responseTime <= before) expect(await asOf(before)).to.equal(900n);
    });
  });
}
