/**
 * The balance ceiling (10^15 fen) and settlement that one account cannot hold up: the database
 * refuses a balance past the ceiling, Pay refuses what would take balance + pending past it, and
 * an account whose settlement fails (an injected fault, or a balance set near the ceiling behind
 * the service's back) is skipped while every other account settles.
 */
import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import type { Knex } from "knex";
import type { SettlementFaults } from "../../services/payment/settlement.js";
import { BALANCE_CEILING } from "../../services/payment/ceiling.js";
import { backends, startPlatform, type Platform } from "../harness.js";
import { countRows, expectCode, inParallel, payRequest, storedBalance, withdrawRequest } from "./fixtures.js";

class InjectedFailure extends Error {}

async function setBalance(knex: Knex, salerId: string, balance: bigint): Promise<void> {
  // Written as digits in the SQL text, as an operator's UPDATE would be.
  await knex.raw(`UPDATE accounts SET balance = ${balance.toString()} WHERE saler_id = ?`, [salerId]);
}

for (const backend of backends()) {
  describe(`balance ceiling and settlement isolation [${backend.name}]`, () => {
    let p: Platform;
    const faults: SettlementFaults = {};

    beforeEach(async () => {
      for (const k of Object.keys(faults)) delete faults[k as keyof SettlementFaults];
      p = await startPlatform(backend, { settlementFaults: faults, payment: { settleChunkSize: 3 } });
    });
    afterEach(async () => p?.close());

    /** Pays `amount` to each account and returns what each is owed. */
    async function payEach(accounts: string[], amount: bigint): Promise<void> {
      for (const a of accounts) expect((await p.paymentClient.pay(payRequest(a, amount))).responseCode).to.equal("SUCCESS");
    }

    it("the database refuses a balance past the ceiling or near the int64 limit, and keeps it an integer", async () => {
      await payEach(["top"], 1n);
      await p.paymentClient.settle({});
      const knex = p.payment.db.knex;
      await setBalance(knex, "top", BALANCE_CEILING);
      expect(await storedBalance(knex, "top")).to.equal(BALANCE_CEILING);
      for (const balance of [BALANCE_CEILING + 1n, 2n ** 63n - 1n]) {
        let refused: unknown;
        await setBalance(knex, "top", balance).catch((err: unknown) => (refused = err));
        expect(refused, `balance ${balance}`).to.be.instanceOf(Error);
        expect(String((refused as Error).message)).to.match(/constraint|check/i);
      }
      // Balance + a credit computed by the database itself, as settlement does.
      let overflow: unknown;
      await knex.raw("UPDATE accounts SET balance = balance + 1 WHERE saler_id = ?", ["top"]).catch((err: unknown) => (overflow = err));
      expect(overflow).to.be.instanceOf(Error);
      if (backend.mysqlUrl === undefined) {
        let fractional: unknown;
        await knex.raw("UPDATE accounts SET balance = 5.5 WHERE saler_id = ?", ["top"]).catch((err: unknown) => (fractional = err));
        expect(fractional, "a float balance on SQLite").to.be.instanceOf(Error);
      }
      expect(await storedBalance(knex, "top")).to.equal(BALANCE_CEILING);
      const { account } = await p.paymentClient.getBalance({ salerId: "top" });
      expect(account?.balance).to.equal(BALANCE_CEILING);
    });

    it("a Pay that would take balance + pending past the ceiling is refused naming total_fee, and writes nothing", async () => {
      await payEach(["near"], 1n);
      await p.paymentClient.settle({});
      const knex = p.payment.db.knex;
      await setBalance(knex, "near", BALANCE_CEILING - 1000n);
      const first = payRequest("near", 600n);
      expect((await p.paymentClient.pay(first)).responseCode).to.equal("SUCCESS");
      const rows = await countRows(knex, "payment_orders");
      const refused = await expectCode(p.paymentClient.pay(payRequest("near", 401n)), Code.FailedPrecondition);
      expect(refused.rawMessage).to.match(/^total_fee: 401 fen would take account near past the balance ceiling of 1000000000000000 fen/);
      expect(await countRows(knex, "payment_orders")).to.equal(rows);
      // The same request again is answered from its record, not refused.
      const again = await p.paymentClient.pay(first);
      expect(again.responseCode).to.equal("SUCCESS");
      // Up to the ceiling exactly is accepted; a fen more is not.
      expect((await p.paymentClient.pay(payRequest("near", 400n))).responseCode).to.equal("SUCCESS");
      await expectCode(p.paymentClient.pay(payRequest("near", 1n)), Code.FailedPrecondition);
      // Other accounts are not affected.
      expect((await p.paymentClient.pay(payRequest("other", 1_000_000_000_000n))).responseCode).to.equal("SUCCESS");
      const r = await p.paymentClient.settle({});
      expect(r.amountSettled).to.equal(1000n + 1_000_000_000_000n);
      expect(await storedBalance(knex, "near")).to.equal(BALANCE_CEILING);
    });

    it("concurrent Pays into the last headroom of an account: exactly as many as fit are accepted", async () => {
      await payEach(["full"], 1n);
      await p.paymentClient.settle({});
      await setBalance(p.payment.db.knex, "full", BALANCE_CEILING - 1000n);
      const answers = await inParallel(40, 40, async () => {
        try {
          return (await p.paymentClient.pay(payRequest("full", 100n))).responseCode;
        } catch (err) {
          return Code[(err as { code: Code }).code];
        }
      });
      expect(answers.filter((a) => a === "SUCCESS").length).to.equal(10);
      expect(answers.filter((a) => a === "FailedPrecondition").length).to.equal(30);
      const { account } = await p.paymentClient.getBalance({ salerId: "full" });
      expect(account).to.include({ balance: BALANCE_CEILING - 1000n, pending: 1000n });
    });

    it("an account whose settlement fails is skipped: every other account settles, it stays pending, a later run settles it once", async () => {
      const accounts = Array.from({ length: 10 }, (_, i) => `iso${i}`);
      await payEach(accounts, 100n);
      await payEach(["iso4"], 11n);
      faults.beforeCommit = async (_trx, settling) => {
        if (settling.includes("iso4")) throw new InjectedFailure("iso4 cannot be settled");
      };
      const first = await p.paymentClient.settle({});
      expect(first.accountsSettled).to.equal(9);
      expect(first.amountSettled).to.equal(900n);
      for (const a of accounts) {
        const { account } = await p.paymentClient.getBalance({ salerId: a });
        if (a === "iso4") expect(account, a).to.include({ balance: 0n, pending: 111n, pendingCount: 2n });
        else expect(account, a).to.include({ balance: 100n, pending: 0n });
      }
      // Still failing: later runs skip it again and settle new credit of the others.
      await payEach(["iso0", "iso4"], 5n);
      const second = await p.paymentClient.settle({});
      expect(second.amountSettled).to.equal(5n);
      delete faults.beforeCommit;
      const third = await p.paymentClient.settle({});
      expect(third.amountSettled).to.equal(116n);
      expect(await storedBalance(p.payment.db.knex, "iso4")).to.equal(116n);
      expect(await countRows(p.payment.db.knex, "payment_orders", { settlement_id: null })).to.equal(0);
      expect((await p.paymentClient.settle({ fullSweep: true })).amountSettled).to.equal(0n);
    });

    it("a balance set near the ceiling in the database: that account is skipped, all others settle, and it settles once it has room", async () => {
      const accounts = Array.from({ length: 9 }, (_, i) => `real${i}`);
      await payEach(accounts, 100n);
      await p.paymentClient.settle({});
      // Pending credit first, then the balance raised behind the service's back.
      await payEach(accounts, 10n);
      await setBalance(p.payment.db.knex, "real4", BALANCE_CEILING - 5n);
      const r = await p.paymentClient.settle({});
      expect(r.ran).to.equal(true);
      expect(r.accountsSettled).to.equal(8);
      expect(r.amountSettled).to.equal(80n);
      for (const a of accounts) {
        const { account } = await p.paymentClient.getBalance({ salerId: a });
        if (a === "real4") expect(account, a).to.include({ balance: BALANCE_CEILING - 5n, pending: 10n });
        else expect(account, a).to.include({ balance: 110n, pending: 0n });
      }
      const { accounts: listed } = await p.paymentClient.listAccounts({});
      expect(listed.length).to.equal(9);
      // A withdrawal makes room; the next run settles the account's credit once.
      expect((await p.paymentClient.withdraw(withdrawRequest("real4", 100n))).responseCode).to.equal("SUCCESS");
      expect(await storedBalance(p.payment.db.knex, "real4")).to.equal(BALANCE_CEILING - 105n);
      expect((await p.paymentClient.settle({})).amountSettled).to.equal(10n);
      expect(await storedBalance(p.payment.db.knex, "real4")).to.equal(BALANCE_CEILING - 95n);
    });
  });
}
