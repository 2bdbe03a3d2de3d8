/**
 * Refunds (退款): all or part of one successful payment, out of the settled balance. Refunds of
 * one payment never add up to more than it and a balance never goes below zero, whatever runs
 * concurrently, on one instance or several.
 */
import { expect } from "chai";
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
import { countRows, inParallel, paymentInstances, payRequest, refundRequest, refusal, storedBalance, withdrawRequest } from "./fixtures.js";
import { requestIdentity } from "../support/requestIdentity.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";


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
