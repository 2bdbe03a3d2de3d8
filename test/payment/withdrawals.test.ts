import { expect } from "chai";
import { backends, startPlatform, type Platform } from "../harness.js";
import {
  MSG_INSUFFICIENT_BALANCE,
  amountFor,
  countRows,
  inParallel,
  payRequest,
  settleLoop,
  storedBalance,
  withdrawRequest,
} from "./fixtures.js";

/** Polls the stored balance until stopped; returns the lowest value it ever read. */
function watchBalance(p: Platform, salerId: string): { stop(): Promise<bigint> } {
  let stopped = false;
  let lowest: bigint | undefined;
  const loop = (async () => {
    while (!stopped) {
      const [fromTable, fromRpc] = await Promise.all([
        storedBalance(p.payment.db.knex, salerId),
        p.paymentClient.getBalance({ salerId }).then((r) => r.account!.balance),
      ]);
      for (const b of [fromTable, fromRpc]) if (lowest === undefined || b < lowest) lowest = b;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return lowest ?? 0n;
    },
  };
}

/** Credits an account through Pay + Settle, so its settled balance is exactly `amount`. */
async function fund(p: Platform, salerId: string, amount: bigint): Promise<void> {
  const r = await p.paymentClient.pay(payRequest(salerId, amount));
  expect(r.responseCode).to.equal("SUCCESS");
  await p.paymentClient.settle({});
  expect((await p.paymentClient.getBalance({ salerId })).account?.balance).to.equal(amount);
}

for (const backend of backends()) {
  describe(`withdrawals [${backend.name}]`, () => {
    let p: Platform;
    before(async () => {
      p = await startPlatform(backend);
    });
    after(async () => p?.close());

    it("100 concurrent withdrawals through the merchant against a balance covering 37: exactly 37 succeed", async () => {
      const each = 250n;
      const remainder = 99n;
      await fund(p, "w-merchant", 37n * each + remainder);
      const watcher = watchBalance(p, "w-merchant");
      const orders = await inParallel(100, 100, async () => (await p.merchantClient.withdraw({ salerId: "w-merchant", withdrawMoney: each })).order!);
      const lowest = await watcher.stop();

      const ok = orders.filter((o) => o.state === "SUCCESS");
      const refused = orders.filter((o) => o.state === "FAIL");
      expect(ok.length).to.equal(37);
      expect(refused.length).to.equal(63);
      for (const o of refused) {
        expect(o.responseCode).to.equal("FAIL");
        expect(o.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
        expect(o.responseId).to.match(/^\d{20}$/);
      }
      expect(lowest >= 0n, `balance read as ${lowest}`).to.equal(true);
      expect(await storedBalance(p.payment.db.knex, "w-merchant")).to.equal(remainder);
      const { account } = await p.paymentClient.getBalance({ salerId: "w-merchant" });
      expect(account?.balance).to.equal(remainder);

      // Every withdrawal is recorded on both sides with the same outcome.
      const rows = (await p.payment.db.knex("withdrawal_orders").where({ saler_id: "w-merchant" }).select("*")) as {
        request_id: string;
        response_id: string;
        response_code: string;
        response_msg: string;
        withdraw_money: unknown;
      }[];
      expect(rows.length).to.equal(100);
      const byRequest = new Map(rows.map((r) => [r.request_id, r]));
      for (const o of orders) {
        const r = byRequest.get(o.requestId)!;
        expect(r.response_id).to.equal(o.responseId);
        expect(r.response_code).to.equal(o.responseCode);
        expect(r.response_msg).to.equal(o.responseMsg);
        expect(BigInt(String(r.withdraw_money))).to.equal(each);
      }
    });

    it("100 concurrent withdrawals directly against the payment system: exactly k succeed, balance ends at the remainder", async () => {
      const each = 1_000n;
      await fund(p, "w-direct", 10n * each + 1n);
      const watcher = watchBalance(p, "w-direct");
      const requests = Array.from({ length: 100 }, () => withdrawRequest("w-direct", each));
      const answers = await Promise.all(requests.map((r) => p.paymentClient.withdraw(r)));
      const lowest = await watcher.stop();
      expect(answers.filter((a) => a.responseCode === "SUCCESS").length).to.equal(10);
      for (const a of answers.filter((x) => x.responseCode !== "SUCCESS")) {
        expect(a.responseCode).to.equal("FAIL");
        expect(a.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      }
      expect(lowest >= 0n).to.equal(true);
      expect(await storedBalance(p.payment.db.knex, "w-direct")).to.equal(1n);
    });

    it("withdrawals of varied amounts racing credits and settlement never overdraw and add up exactly", async () => {
      const salerId = "w-mixed";
      await fund(p, salerId, 50_000n);
      const settling = settleLoop((r) => p.paymentClient.settle(r));
      const watcher = watchBalance(p, salerId);
      const [credits, withdrawals] = await Promise.all([
        inParallel(200, 16, async (i) => {
          const req = payRequest(salerId, amountFor(i, 500));
          const r = await p.paymentClient.pay(req);
          expect(r.responseCode).to.equal("SUCCESS");
          return req.totalFee;
        }),
        inParallel(300, 48, async (i) => p.paymentClient.withdraw(withdrawRequest(salerId, amountFor(i, 900)))),
      ]);
      await settling.stop();
      await p.paymentClient.settle({});
      const lowest = await watcher.stop();

      const credited = credits.reduce((a, b) => a + b, 0n);
      const debited = withdrawals.filter((w) => w.responseCode === "SUCCESS").reduce((a, w) => a + w.withdrawMoney, 0n);
      for (const w of withdrawals.filter((x) => x.responseCode !== "SUCCESS")) expect(w.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      expect(withdrawals.some((w) => w.responseCode === "SUCCESS")).to.equal(true);
      expect(lowest >= 0n).to.equal(true);
      expect(await storedBalance(p.payment.db.knex, salerId)).to.equal(50_000n + credited - debited);
      const [sum] = (await p.payment.db
        .knex("withdrawal_orders")
        .where({ saler_id: salerId, response_code: "SUCCESS" })
        .sum({ s: "withdraw_money" })) as { s: unknown }[];
      expect(BigInt(String(sum?.s ?? 0))).to.equal(debited);
    });

    it("the database itself refuses a negative balance", async () => {
      await fund(p, "w-check", 10n);
      const knex = p.payment.db.knex;
      let refused = false;
      try {
        await knex("accounts").where({ saler_id: "w-check" }).update({ balance: knex.raw("balance - 11") });
      } catch {
        refused = true;
      }
      expect(refused, "UPDATE to a negative balance was accepted").to.equal(true);
      expect(await storedBalance(knex, "w-check")).to.equal(10n);
    });

    it("a withdrawal for an account that does not exist fails with the seed's insufficient-balance message and creates no account", async () => {
      const before = await countRows(p.payment.db.knex, "accounts");
      const r = await p.paymentClient.withdraw(withdrawRequest("nobody-here", 1n));
      expect(r.responseCode).to.equal("FAIL");
      expect(r.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      expect(await countRows(p.payment.db.knex, "accounts")).to.equal(before);
      const { order } = await p.merchantClient.withdraw({ salerId: "nobody-there", withdrawMoney: 5n });
      expect(order?.state).to.equal("FAIL");
      expect(order?.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      expect(await countRows(p.payment.db.knex, "accounts")).to.equal(before);
    });

    it("pending credit is not withdrawable until settled", async () => {
      await p.paymentClient.pay(payRequest("w-pending", 500n));
      const early = await p.paymentClient.withdraw(withdrawRequest("w-pending", 1n));
      expect(early.responseCode).to.equal("FAIL");
      expect(early.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      await p.paymentClient.settle({});
      const exact = await p.paymentClient.withdraw(withdrawRequest("w-pending", 500n));
      expect(exact.responseCode).to.equal("SUCCESS");
      expect(await storedBalance(p.payment.db.knex, "w-pending")).to.equal(0n);
    });

    it("the same withdrawal retried concurrently debits once and answers identically", async () => {
      await fund(p, "w-retry", 1_000n);
      const req = withdrawRequest("w-retry", 300n);
      const answers = await Promise.all(Array.from({ length: 12 }, () => p.paymentClient.withdraw(req)));
      for (const a of answers) expect(a).to.deep.equal(answers[0]);
      expect(answers[0]!.responseCode).to.equal("SUCCESS");
      expect(await storedBalance(p.payment.db.knex, "w-retry")).to.equal(700n);
      expect(await countRows(p.payment.db.knex, "withdrawal_orders", { request_id: req.requestId })).to.equal(1);
      // A refused withdrawal is also a stored answer: retried later it stays refused, even once funds arrive.
      const big = withdrawRequest("w-retry", 5_000n);
      const first = await p.paymentClient.withdraw(big);
      expect(first.responseMsg).to.equal(MSG_INSUFFICIENT_BALANCE);
      await p.paymentClient.pay(payRequest("w-retry", 10_000n));
      await p.paymentClient.settle({});
      expect(await p.paymentClient.withdraw(big)).to.deep.equal(first);
      expect(await storedBalance(p.payment.db.knex, "w-retry")).to.equal(10_700n);
    });
  });
}
