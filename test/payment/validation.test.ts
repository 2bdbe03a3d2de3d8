import { expect } from "chai";
import { Code } from "@connectrpc/connect";
import { readPaymentConfig } from "../../services/payment/config.js";
import { EnvReader } from "../../services/shared/runtime/config.js";
import { backends, startPlatform, type Platform } from "../harness.js";
import { expectCode, paymentRowCounts } from "./fixtures.js";
import { requestIdentity } from "../support/requestIdentity.js";

interface Case {
  title: string;
  field: string;
  change: Record<string, unknown>;
}

const TIME = "2019-08-29 17:15:20";
const ID = "20190829171520123456";

/** One case per rule of SPEC section 2, on the fields both requests share. */
function sharedCases(amountField: "totalFee" | "withdrawMoney", amountName: string): Case[] {
  const cases: Case[] = [];
  const time = (title: string, requestTime: string, requestId = ID) => cases.push({ title, field: "request_time", change: { requestTime, requestId } });
  time("request_time missing", "");
  time("request_time with a T", "2019-08-29T17:15:20");
  time("request_time without leading zeros", "2019-8-29 17:15:20");
  time("request_time with a trailing space", "2019-08-29 17:15:20 ");
  time("request_time with milliseconds", "2019-08-29 17:15:20.000");
  time("request_time with slashes", "2019/08/29 17:15:20");
  time("request_time on 30 February", "2019-02-30 10:00:00", "20190230100000123456");
  time("request_time on 29 February of a common year", "2019-02-29 10:00:00", "20190229100000123456");
  time("request_time on 31 April", "2019-04-31 10:00:00", "20190431100000123456");
  time("request_time in month 13", "2019-13-01 10:00:00", "20191301100000123456");
  time("request_time in month 00", "2019-00-10 10:00:00", "20190010100000123456");
  time("request_time on day 00", "2019-08-00 10:00:00", "20190800100000123456");
  time("request_time at hour 24", "2019-08-29 24:00:00", "20190829240000123456");
  time("request_time at minute 60", "2019-08-29 17:60:00", "20190829176000123456");
  time("request_time at second 60", "2019-08-29 17:15:60", "20190829171560123456");
  time("request_time at the end of time", "9999-12-31 23:59:59", "99991231235959123456");
  time("request_time at the Unix epoch", "1970-01-01 00:00:00", "19700101000000123456");
  time("request_time one second before 2000", "1999-12-31 23:59:59", "19991231235959123456");
  const id = (title: string, requestId: string) => cases.push({ title, field: "request_id", change: { requestId } });
  id("request_id missing", "");
  id("request_id of 19 digits", ID.slice(0, 19));
  id("request_id of 21 digits", `${ID}7`);
  id("request_id with a letter", `${ID.slice(0, 19)}a`);
  id("request_id with a sign", `+${ID.slice(1)}`);
  id("request_id with spaces", ` ${ID.slice(1)}`);
  id("request_id whose prefix is another second", "20190829171521123456");
  id("request_id whose prefix is another day", "20190830171520123456");
  const saler = (title: string, salerId: string) => cases.push({ title, field: "saler_id", change: { salerId } });
  saler("saler_id missing", "");
  saler("saler_id of 65 characters", "s".repeat(65));
  saler("saler_id with a space", "saler 1");
  saler("saler_id with a dot", "saler.1");
  saler("saler_id with a slash", "saler/1");
  saler("saler_id with a quote", "saler'1");
  saler("saler_id with Chinese characters", "商户1");
  saler("saler_id with a newline", "saler1\n");
  const amount = (title: string, value: bigint) => cases.push({ title, field: amountName, change: { [amountField]: value } });
  amount(`${amountName} zero`, 0n);
  amount(`${amountName} negative`, -1n);
  amount(`${amountName} far negative`, -(2n ** 63n));
  amount(`${amountName} above 10^12`, 1_000_000_000_001n);
  amount(`${amountName} at the int64 maximum`, 2n ** 63n - 1n);
  return cases;
}

for (const backend of backends()) {
  describe(`request validation [${backend.name}]`, () => {
    let p: Platform;
    before(async () => {
      p = await startPlatform(backend);
    });
    after(async () => p?.close());

    const payBase = { requestTime: TIME, requestId: ID, salerId: "saler2", totalFee: 100n };
    const withdrawBase = { requestTime: TIME, requestId: ID, salerId: "saler1", withdrawMoney: 100n };

    for (const c of sharedCases("totalFee", "total_fee")) {
      it(`Pay refuses ${c.title}, naming the field, writing nothing`, async () => {
        const before = await paymentRowCounts(p);
        const e = await expectCode(p.paymentClient.pay({ ...payBase, ...c.change }), Code.InvalidArgument);
        expect(e.rawMessage.startsWith(`${c.field}:`), e.rawMessage).to.equal(true);
        expect(await paymentRowCounts(p)).to.deep.equal(before);
      });
    }

    for (const c of sharedCases("withdrawMoney", "withdraw_money")) {
      it(`Withdraw refuses ${c.title}, naming the field, writing nothing`, async () => {
        const before = await paymentRowCounts(p);
        const e = await expectCode(p.paymentClient.withdraw({ ...withdrawBase, ...c.change }), Code.InvalidArgument);
        expect(e.rawMessage.startsWith(`${c.field}:`), e.rawMessage).to.equal(true);
        expect(await paymentRowCounts(p)).to.deep.equal(before);
      });
    }

    it("accepts the edges of every rule", async () => {
      const edges = [
        { requestTime: "2020-02-29 23:59:59", requestId: "20200229235959000000", salerId: "s".repeat(64), totalFee: 1_000_000_000_000n },
        { requestTime: "2019-12-31 00:00:00", requestId: "20191231000000999999", salerId: "A-z_0-9", totalFee: 1n },
        { requestTime: "2000-02-29 12:00:00", requestId: "20000229120000000001", salerId: "a", totalFee: 2n },
      ];
      for (const req of edges) {
        const r = await p.paymentClient.pay(req);
        expect(r.responseCode, req.requestId).to.equal("SUCCESS");
        expect(r.responseId).to.match(/^\d{20}$/);
        expect(r.responseId.slice(0, 14)).to.equal(r.responseTime.replace(/[- :]/g, ""));
      }
      const w = await p.paymentClient.withdraw({ ...requestIdentity(), salerId: "s".repeat(64), withdrawMoney: 1_000_000_000_000n });
      expect(w.responseCode).to.equal("FAIL");
    });


    it("refuses a request_time more than PAYMENT_REQUEST_TIME_MAX_AHEAD_SECONDS (300) ahead of its clock on Pay and Withdraw, writing nothing", async () => {
      const before = await paymentRowCounts(p);
      for (const seconds of [360, 3600, 86_400 * 365]) {
        const pay = await expectCode(p.paymentClient.pay({ ...requestIdentity(seconds), salerId: "future1", totalFee: 100n }), Code.InvalidArgument);
        expect(pay.rawMessage).to.match(/^request_time: must not be later than/);
        const withdraw = await expectCode(p.paymentClient.withdraw({ ...requestIdentity(seconds), salerId: "future1", withdrawMoney: 100n }), Code.InvalidArgument);
        expect(withdraw.rawMessage).to.match(/^request_time: must not be later than/);
      }
      expect(await paymentRowCounts(p)).to.deep.equal(before);
    });

    it("accepts a request_time a little ahead of its clock (skew), the seed's 2019 times and 2000-01-01 00:00:00", async () => {
      const pay = await p.paymentClient.pay({ ...requestIdentity(240), salerId: "skew1", totalFee: 100n });
      expect(pay.responseCode).to.equal("SUCCESS");
      const withdraw = await p.paymentClient.withdraw({ ...requestIdentity(240), salerId: "skew1", withdrawMoney: 100n });
      expect(withdraw.responseCode, "nothing settled yet").to.equal("FAIL");
      const floor = await p.paymentClient.pay({ requestTime: "2000-01-01 00:00:00", requestId: "20000101000000000001", salerId: "skew1", totalFee: 1n });
      expect(floor.responseCode).to.equal("SUCCESS");
      const seed = await p.paymentClient.pay({ requestTime: "2019-08-29 17:15:20", requestId: "20190829171520000042", salerId: "skew1", totalFee: 1n });
      expect(seed.responseCode).to.equal("SUCCESS");
    });

    it("reads the allowed skew from PAYMENT_REQUEST_TIME_MAX_AHEAD_SECONDS", async () => {
      expect(readPaymentConfig(new EnvReader({})).requestTimeMaxAheadSeconds).to.equal(300);
      const config = readPaymentConfig(new EnvReader({ PAYMENT_REQUEST_TIME_MAX_AHEAD_SECONDS: "0" }));
      expect(config.requestTimeMaxAheadSeconds).to.equal(0);
      const strict = await startPlatform(backend, { payment: { requestTimeMaxAheadSeconds: 0 } });
      try {
        const e = await expectCode(strict.paymentClient.pay({ ...requestIdentity(60), salerId: "skew2", totalFee: 100n }), Code.InvalidArgument);
        expect(e.rawMessage).to.match(/^request_time: /);
        const now = await strict.paymentClient.pay({ ...requestIdentity(), salerId: "skew2", totalFee: 100n });
        expect(now.responseCode).to.equal("SUCCESS");
      } finally {
        await strict.close();
      }
    });

    it("accepts the seed's payment request JSON on the Connect gateway and answers in snake_case", async () => {
      const res = await fetch(`${p.payment.server.httpUrl}/payment.v1.PaymentService/Pay`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ request_time: TIME, request_id: "20190829171520654321", saler_id: "saler2", total_fee: "100" }),
      });
      expect(res.status).to.equal(200);
      const body = (await res.json()) as Record<string, string>;
      expect(body.request_id).to.equal("20190829171520654321");
      expect(body.saler_id).to.equal("saler2");
      expect(body.total_fee).to.equal("100");
      expect(body.response_code).to.equal("SUCCESS");
      expect(body.response_id).to.match(/^\d{20}$/);
      expect(body.response_time).to.match(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    });

    it("refuses a fractional amount on the JSON gateway and writes nothing", async () => {
      const before = await paymentRowCounts(p);
      for (const total_fee of ["100.5", 100.5, "abc", "-0.1"]) {
        const res = await fetch(`${p.payment.server.httpUrl}/payment.v1.PaymentService/Pay`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ request_time: TIME, request_id: "20190829171520000777", saler_id: "saler2", total_fee }),
        });
        expect(res.status, String(total_fee)).to.equal(400);
        const body = (await res.json()) as { code: string; message: string };
        expect(body.code).to.equal("invalid_argument");
        expect(body.message).to.contain("total_fee");
      }
      expect(await paymentRowCounts(p)).to.deep.equal(before);
    });
  });
}
