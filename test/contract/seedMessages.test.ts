/**
 * The seed's own messages, byte for byte, on the Connect JSON gateway and through `buf curl`:
 * the payment request (支付请求报文) and the withdrawal request (提款请求报文) must be accepted
 * as written and answered with the snake_case fields and string-encoded integers of SPEC
 * section 2.
 */
import { expect } from "chai";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import { backends, startPlatform, type Platform } from "../harness.js";
import { bufCurl } from "./clients.js";
import { expectResponseId, PAY_RESPONSE_FIELDS, WITHDRAW_RESPONSE_FIELDS } from "./targets.js";
import { REPO_ROOT } from "../support/paths.js";
import { postJson } from "../support/http.js";

// Exactly as SPEC.md (and the seed) writes them, spacing included.
const SEED_PAY = `{"request_time": "2019-08-29 17:15:20", "request_id": "20190829171520123456", "saler_id": "saler2", "total_fee": "100"}`;
const SEED_WITHDRAW = `{"request_time": "2019-08-29 17:16:21", "request_id": "20190829171621334455", "withdraw_money": "100", "saler_id": "saler1"}`;
const INSUFFICIENT_BALANCE = "账户余额不足，提款失败";

for (const backend of backends()) {
  describe(`contract: the seed's messages [${backend.name}]`, () => {
    let p: Platform;
    before(async () => {
      p = await startPlatform(backend);
    });
    after(async () => p?.close());

    let payAnswer: JsonObject;

    it("accepts the seed's payment request on POST /payment.v1.PaymentService/Pay and answers as SPEC shows", async () => {
      const res = await postJson(p.payment.server.httpUrl + "/payment.v1.PaymentService/Pay", SEED_PAY);
      expect(res.status, res.text).to.equal(200);
      expect(res.contentType).to.equal("application/json");
      payAnswer = JSON.parse(res.text) as JsonObject;
      expect(Object.keys(payAnswer)).to.deep.equal(PAY_RESPONSE_FIELDS);
      expect(payAnswer).to.include({
        request_id: "20190829171520123456",
        saler_id: "saler2",
        total_fee: "100",
        response_code: "SUCCESS",
        response_msg: "OK",
      });
      expectResponseId(payAnswer);
      // The integer travels as a JSON string, never as a number.
      expect(res.text).to.contain('"total_fee":"100"');
    });

    it("recorded that payment: pending credit 100 on saler2", async () => {
      const { account } = await p.paymentClient.getBalance({ salerId: "saler2" });
      expect(account?.pending).to.equal(100n);
      expect(account?.balance).to.equal(0n);
    });

    it("gives buf curl over gRPC the same stored answer for the same request", async () => {
      const res = await bufCurl([
        "--protocol",
        "grpc",
        "--http2-prior-knowledge",
        "--schema",
        REPO_ROOT,
        "--data",
        SEED_PAY,
        `http://${p.payment.server.grpcAddress}/payment.v1.PaymentService/Pay`,
      ]);
      expect(res.exitCode, res.stderr).to.equal(0);
      // buf curl prints proto3 JSON with camelCase names.
      expect(JSON.parse(res.stdout)).to.deep.equal({
        responseTime: payAnswer.response_time,
        requestId: "20190829171520123456",
        responseId: payAnswer.response_id,
        salerId: "saler2",
        totalFee: "100",
        responseCode: "SUCCESS",
        responseMsg: "OK",
      });
    });

    it(`answers the seed's withdrawal sent to a fresh system with FAIL ${INSUFFICIENT_BALANCE}, creating no account`, async () => {
      const fresh = await startPlatform(backend);
      try {
        const res = await postJson(fresh.payment.server.httpUrl + "/payment.v1.PaymentService/Withdraw", SEED_WITHDRAW);
        expect(res.status, res.text).to.equal(200);
        expect(JSON.parse(res.text)).to.include({ request_id: "20190829171621334455", saler_id: "saler1", response_code: "FAIL", response_msg: INSUFFICIENT_BALANCE });
        const missing = await fresh.paymentClient.getBalance({ salerId: "saler1" }).then(
          () => "exists",
          (err: ConnectError) => err.code,
        );
        expect(missing, "no account saler1").to.equal(Code.NotFound);
      } finally {
        await fresh.close();
      }
    });

    it(`answers the seed's withdrawal on an empty account with FAIL ${INSUFFICIENT_BALANCE}`, async () => {
      // saler1 exists with pending credit only: nothing settled, nothing to withdraw.
      await p.paymentClient.pay({ requestTime: "2019-08-29 17:16:00", requestId: "20190829171600000001", salerId: "saler1", totalFee: 100n });
      const res = await postJson(p.payment.server.httpUrl + "/payment.v1.PaymentService/Withdraw", SEED_WITHDRAW);
      expect(res.status, res.text).to.equal(200);
      const answer = JSON.parse(res.text) as JsonObject;
      expect(Object.keys(answer)).to.deep.equal(WITHDRAW_RESPONSE_FIELDS);
      expect(answer).to.include({
        request_time: "2019-08-29 17:16:21",
        request_id: "20190829171621334455",
        withdraw_money: "100",
        saler_id: "saler1",
        response_code: "FAIL",
        response_msg: INSUFFICIENT_BALANCE,
      });
      expectResponseId(answer);
      expect(res.text).to.contain('"withdraw_money":"100"');
    });

    it("lets the same amount be withdrawn once the credit is settled", async () => {
      await p.paymentClient.settle({});
      const res = await postJson(p.payment.server.httpUrl + "/payment.v1.PaymentService/Withdraw",
        JSON.stringify({ request_time: "2019-08-29 17:16:22", request_id: "20190829171622000001", withdraw_money: "100", saler_id: "saler1" }),
      );
      expect(JSON.parse(res.text)).to.include({ response_code: "SUCCESS", withdraw_money: "100" });
      const { account } = await p.paymentClient.getBalance({ salerId: "saler1" });
      expect(account?.balance).to.equal(0n);
    });

    it("answers the merchant's gateway with the order in snake_case", async () => {
      const res = await postJson(p.merchant.server.httpUrl + "/merchant.v1.MerchantService/Pay", `{"saler_id": "saler3", "total_fee": "250"}`);
      expect(res.status, res.text).to.equal(200);
      const { order } = JSON.parse(res.text) as { order: JsonObject };
      expect(Object.keys(order)).to.deep.equal([
        "request_id",
        "order_type",
        "saler_id",
        "amount",
        "request_time",
        "state",
        "response_id",
        "response_time",
        "response_code",
        "response_msg",
        "payment_request_id",
        "refunded",
        "refundable",
      ]);
      expect(order).to.include({ order_type: "ORDER_TYPE_PAYMENT", saler_id: "saler3", amount: "250", state: "SUCCESS", response_code: "SUCCESS", refundable: "250" });
    });
  });
}
