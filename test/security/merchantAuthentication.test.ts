/**
 * Merchant authentication on the payment system: with PAYMENT_MERCHANT_KEYS configured, Pay,
 * Withdraw and QueryOrder are accepted only when signed (HMAC-SHA256 over the canonical request)
 * by a known merchant within the request_time window, over gRPC and over the JSON gateway alike.
 * The merchant system signs with MERCHANT_ID/MERCHANT_KEY. Refusals are UNAUTHENTICATED, name
 * what is wrong, and write nothing; an identical signed retry is answered from the stored order.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { expect } from "chai";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { PaymentService, PayRequestSchema, type PayRequest } from "../../gen/payment/v1/payment_pb.js";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { createGrpcClient, type GrpcClientHandle } from "../../services/shared/rpc/grpcClient.js";
import { readPaymentConfig } from "../../services/payment/config.js";
import { readMerchantConfig } from "../../services/merchant/config.js";
import { EnvReader } from "../../services/shared/runtime/config.js";
import { ConfigError } from "../../services/shared/errors.js";
import { canonicalString, signatureHeaders, signCanonical, type MerchantCredentials } from "../../services/shared/auth/signing.js";
import { startMerchantSystem } from "../../services/merchant/system.js";
import { idPrefix } from "../../services/shared/orders/time.js";
import { insertOrder, recordOutcome } from "../../services/merchant/orders.js";
import { backends, freshStore, merchantConfig, silentLogger, startPlatform, type Platform } from "../harness.js";
import { documentedCanonical, expectRefused, callJson, signJson } from "./calls.js";
import { requestIdentityJson, clock } from "../support/requestIdentity.js";
import { OrderType } from "../../gen/order/v1/order_pb.js";

const PAY = "/payment.v1.PaymentService/Pay";
const WITHDRAW = "/payment.v1.PaymentService/Withdraw";
const QUERY = "/payment.v1.PaymentService/QueryOrder";
const WINDOW = 60;

describe("merchant signatures: the documented recipe", () => {
  it("signs the seed's payment as the documentation writes it, and openssl computes the same HMAC", () => {
    const seed = create(PayRequestSchema, { requestTime: "2019-08-29 17:15:20", requestId: "20190829171520123456", salerId: "saler2", totalFee: 100n });
    const canonical = canonicalString(PAY, "merchant1", PayRequestSchema, seed);
    expect(canonical).to.equal(
      "merchant_id=merchant1&request_id=20190829171520123456&request_time=2019-08-29%2017%3A15%3A20&rpc=%2Fpayment.v1.PaymentService%2FPay&saler_id=saler2&total_fee=100",
    );
    expect(canonical).to.equal(
      documentedCanonical(PAY, "merchant1", { request_time: "2019-08-29 17:15:20", request_id: "20190829171520123456", saler_id: "saler2", total_fee: "100" }),
    );
    const key = Buffer.from("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "hex");
    const openssl = execFileSync("openssl", ["dgst", "-sha256", "-mac", "HMAC", "-macopt", `hexkey:${key.toString("hex")}`], { input: canonical }).toString();
    expect(openssl.trim().split(/\s+/).pop()).to.equal(signCanonical(key, canonical));
  });

  it("reads merchant keys from configuration and refuses malformed ones naming the variable", () => {
    const hex = randomBytes(32).toString("hex");
    const b64 = randomBytes(24).toString("base64");
    const config = readPaymentConfig(new EnvReader({ PAYMENT_MERCHANT_KEYS: `m1:${hex}, m2:${b64},m3:base64:${b64}`, PAYMENT_REQUEST_WINDOW_SECONDS: "120" }));
    expect(config.merchantKeys?.get("m1")?.toString("hex")).to.equal(hex);
    expect(config.merchantKeys?.get("m2")?.toString("base64")).to.equal(b64);
    expect(config.merchantKeys?.get("m3")?.toString("base64")).to.equal(b64);
    expect(config.requestWindowSeconds).to.equal(120);
    expect(readPaymentConfig(new EnvReader({})).merchantKeys, "no keys: authentication off").to.equal(undefined);
    for (const bad of ["m1:abcd", "m1", `bad id:${hex}`, `m1:${hex},m1:${hex}`, "m1:not base64!", ","]) {
      expect(() => readPaymentConfig(new EnvReader({ PAYMENT_MERCHANT_KEYS: bad })), bad).to.throw(ConfigError, /PAYMENT_MERCHANT_KEYS/);
    }
    expect(() => readPaymentConfig(new EnvReader({ PAYMENT_REQUEST_WINDOW_SECONDS: "0" }))).to.throw(ConfigError, /PAYMENT_REQUEST_WINDOW_SECONDS/);
    expect(readMerchantConfig(new EnvReader({ MERCHANT_ID: "m1", MERCHANT_KEY: hex })).signing?.merchantId).to.equal("m1");
    expect(() => readMerchantConfig(new EnvReader({ MERCHANT_ID: "m1" }))).to.throw(ConfigError, /MERCHANT_KEY/);
    expect(() => readMerchantConfig(new EnvReader({ MERCHANT_KEY: hex }))).to.throw(ConfigError, /MERCHANT_ID/);
    expect(() => readMerchantConfig(new EnvReader({ MERCHANT_ID: "m1", MERCHANT_KEY: "00" }))).to.throw(ConfigError, /MERCHANT_KEY/);
  });
});

for (const backend of backends()) {
  describe(`merchant authentication on the payment system [${backend.name}]`, function () {
    this.timeout(120_000);
    const key1 = randomBytes(32);
    const key2 = randomBytes(32);
    const merchant1: MerchantCredentials = { merchantId: "merchant1", key: key1 };
    let p: Platform;
    let signed: GrpcClientHandle<typeof PaymentService>;
    let unsigned: GrpcClientHandle<typeof PaymentService>;

    const payUrl = () => p.payment.server.httpUrl;
    const orderRows = async () => Number(((await p.payment.db.knex("payment_orders").count({ n: "*" })) as { n: number | string }[])[0]!.n);
    const withdrawalRows = async () => Number(((await p.payment.db.knex("withdrawal_orders").count({ n: "*" })) as { n: number | string }[])[0]!.n);
    const recorded = async (requestId: string) => (await signed.client.queryOrder({ requestId })).found;

    before(async () => {
      p = await startPlatform(backend, {
        payment: { merchantKeys: new Map([["merchant1", key1], ["merchant2", key2]]), requestWindowSeconds: WINDOW },
        merchant: { signing: merchant1 },
      });
      signed = createGrpcClient(PaymentService, p.payment.server.grpcAddress, {
        callHeaders: (method, message) => signatureHeaders(merchant1, `/${method.parent.typeName}/${method.name}`, method.input, message as never, clock.current()),
      });
      unsigned = createGrpcClient(PaymentService, p.payment.server.grpcAddress);
    });
    after(async () => {
      signed?.close();
      unsigned?.close();
      await p?.close();
    });

    it("accepts the merchant system's signed payments and withdrawals", async () => {
      const paid = await p.merchantClient.pay({ salerId: "auth_m1", totalFee: 300n });
      expect(paid.order?.state, paid.order?.responseMsg).to.equal("SUCCESS");
      expect(await recorded(paid.order!.requestId)).to.equal(true);
      const withdrawn = await p.merchantClient.withdraw({ salerId: "auth_m1", withdrawMoney: 100n });
      // Credited but not yet settled: a business FAIL, which proves the signed call got through.
      expect(withdrawn.order?.responseCode).to.equal("FAIL");
      expect(await recorded(withdrawn.order!.requestId)).to.equal(true);
    });

    it("refuses the seed's unsigned JSON with UNAUTHENTICATED and writes nothing", async () => {
      const before = await orderRows();
      const body = { ...requestIdentityJson(), saler_id: "saler2", total_fee: "100" };
      const res = await callJson(payUrl(), PAY, body);
      expect(res.status).to.equal(401);
      expect(res.code).to.equal("unauthenticated");
      expect(res.message).to.match(/^x-merchant-id header is required/);
      expect(res.headers.get("x-request-id")).to.be.a("string");
      expect(await orderRows()).to.equal(before);
      expect(await recorded(body.request_id)).to.equal(false);
    });

    it("accepts a JSON payment signed by the documented recipe; an identical replay in the window gets the stored answer and credits nothing more", async () => {
      const body = { ...requestIdentityJson(), saler_id: "auth_replay", total_fee: "250" };
      const headers = signJson(PAY, "merchant2", key2, body);
      const first = await callJson(payUrl(), PAY, body, headers);
      expect(first.status, JSON.stringify(first.body)).to.equal(200);
      expect(first.body.response_code).to.equal("SUCCESS");
      const rows = await orderRows();
      const again = await callJson(payUrl(), PAY, body, headers);
      expect(again.status).to.equal(200);
      expect(again.body).to.deep.equal(first.body);
      expect(await orderRows()).to.equal(rows);
      const { account } = await unsigned.client.getBalance({ salerId: "auth_replay" });
      expect(account!.pending + account!.balance).to.equal(250n);
    });

    it("refuses the same request_id with another, correctly signed body as ALREADY_EXISTS", async () => {
      const body = { ...requestIdentityJson(), saler_id: "auth_conflict", total_fee: "10" };
      expect((await callJson(payUrl(), PAY, body, signJson(PAY, "merchant1", key1, body))).status).to.equal(200);
      const other = { ...body, total_fee: "11" };
      const res = await callJson(payUrl(), PAY, other, signJson(PAY, "merchant1", key1, other));
      expect(res.code).to.equal("already_exists");
    });

    it("lets a signed request that breaks a field rule through to validation: INVALID_ARGUMENT naming the field", async () => {
      const body = { ...requestIdentityJson(), saler_id: "auth_zero", total_fee: "0" };
      const res = await callJson(payUrl(), PAY, body, signJson(PAY, "merchant1", key1, body));
      expect(res.code).to.equal("invalid_argument");
      expect(res.message).to.match(/^total_fee: /);
    });

    /** Each refusal: how the request is made wrong, and what the message says. */
    const refusals: { name: string; make: () => { body: Record<string, string>; headers: Record<string, string> }; message: RegExp }[] = [
      {
        name: "a body changed after signing",
        make: () => {
          const body = { ...requestIdentityJson(), saler_id: "auth_tamper", total_fee: "100" };
          return { body: { ...body, total_fee: "100000" }, headers: signJson(PAY, "merchant1", key1, body) };
        },
        message: /^x-signature: does not match the request/,
      },
      {
        name: "an unknown merchant",
        make: () => {
          const body = { ...requestIdentityJson(), saler_id: "auth_unknown", total_fee: "100" };
          return { body, headers: signJson(PAY, "merchant9", key1, body) };
        },
        message: /^x-merchant-id: unknown merchant "merchant9"/,
      },
      {
        name: "another merchant's key",
        make: () => {
          const body = { ...requestIdentityJson(), saler_id: "auth_wrongkey", total_fee: "100" };
          return { body, headers: signJson(PAY, "merchant2", key1, body) };
        },
        message: /^x-signature: does not match/,
      },
      {
        name: "no signature",
        make: () => ({ body: { ...requestIdentityJson(), saler_id: "auth_nosig", total_fee: "100" }, headers: { "x-merchant-id": "merchant1" } }),
        message: /^x-signature header is required/,
      },
      {
        name: "a malformed signature",
        make: () => ({ body: { ...requestIdentityJson(), saler_id: "auth_badsig", total_fee: "100" }, headers: { "x-merchant-id": "merchant1", "x-signature": "not-hex" } }),
        message: /^x-signature: must be 64 hex digits/,
      },
      {
        name: "a request_time before the window",
        make: () => {
          const body = { ...requestIdentityJson(-10 * WINDOW), saler_id: "auth_stale", total_fee: "100" };
          return { body, headers: signJson(PAY, "merchant1", key1, body) };
        },
        message: /^request_time: .* is outside the accepted window of 60 s/,
      },
      {
        name: "a request_time after the window",
        make: () => {
          const body = { ...requestIdentityJson(10 * WINDOW), saler_id: "auth_future", total_fee: "100" };
          return { body, headers: signJson(PAY, "merchant1", key1, body) };
        },
        message: /outside the accepted window/,
      },
      {
        name: "a payment's signature presented on Withdraw",
        make: () => {
          const body = { ...requestIdentityJson(), saler_id: "auth_rpc", total_fee: "100" };
          return { body: { request_time: body.request_time, request_id: body.request_id, saler_id: body.saler_id, withdraw_money: "100" }, headers: signJson(PAY, "merchant1", key1, body) };
        },
        message: /^x-signature: does not match/,
      },
    ];

    for (const r of refusals) {
      it(`refuses ${r.name} with UNAUTHENTICATED over JSON and gRPC, writing nothing`, async () => {
        const before = { orders: await orderRows(), withdrawals: await withdrawalRows() };
        const json = r.make();
        const rpc = "withdraw_money" in json.body ? WITHDRAW : PAY;
        const res = await callJson(payUrl(), rpc, json.body, json.headers);
        expect(res.status).to.equal(401);
        expect(res.code).to.equal("unauthenticated");
        expect(res.message).to.match(r.message);

        const viaGrpc = r.make();
        const b = viaGrpc.body;
        const call =
          rpc === WITHDRAW
            ? unsigned.client.withdraw({ requestTime: b.request_time!, requestId: b.request_id!, salerId: b.saler_id!, withdrawMoney: BigInt(b.withdraw_money!) }, { headers: viaGrpc.headers })
            : unsigned.client.pay({ requestTime: b.request_time!, requestId: b.request_id!, salerId: b.saler_id!, totalFee: BigInt(b.total_fee!) }, { headers: viaGrpc.headers });
        const e = await expectRefused(call, Code.Unauthenticated, r.message);
        expect(e.metadata.get("x-request-id"), "the refusal carries a request id").to.be.a("string");

        expect(await orderRows()).to.equal(before.orders);
        expect(await withdrawalRows()).to.equal(before.withdrawals);
        expect(await recorded(json.body.request_id!)).to.equal(false);
        expect(await recorded(viaGrpc.body.request_id!)).to.equal(false);
      });
    }

    it("signs QueryOrder with an x-request-time header and refuses it without one", async () => {
      const paid = await p.merchantClient.pay({ salerId: "auth_query", totalFee: 5n });
      expect(await recorded(paid.order!.requestId)).to.equal(true);
      const body = { request_id: paid.order!.requestId, order_type: "ORDER_TYPE_UNSPECIFIED" };
      const noTime = signJson(QUERY, "merchant1", key1, { ...body, request_time: "" });
      const res = await callJson(payUrl(), QUERY, body, noTime);
      expect(res.code).to.equal("unauthenticated");
      expect(res.message).to.match(/^x-request-time header is required/);
      const now = clock.current();
      const ok = await callJson(payUrl(), QUERY, body, { ...signJson(QUERY, "merchant1", key1, { ...body, request_time: now }), "x-request-time": now });
      expect(ok.status, JSON.stringify(ok.body)).to.equal(200);
      expect(ok.body.found).to.equal(true);
      await expectRefused(unsigned.client.queryOrder({ requestId: paid.order!.requestId }), Code.Unauthenticated, /x-merchant-id/);
    });

    it("resolves the merchant's UNKNOWN order through its signed QueryOrder", async () => {
      const id = requestIdentityJson();
      const request: PayRequest = create(PayRequestSchema, { requestTime: id.request_time, requestId: id.request_id, salerId: "auth_resolve", totalFee: 70n });
      expect((await signed.client.pay(request)).responseCode).to.equal("SUCCESS");
      const knex = p.merchant.db.knex;
      await insertOrder(knex, { requestId: id.request_id, orderType: "PAYMENT", salerId: "auth_resolve", amount: 70n, requestTime: id.request_time, state: "INIT", responseId: "", responseTime: "", responseCode: "", responseMsg: "", fault: null }, id.request_time);
      await recordOutcome(knex, id.request_id, { state: "UNKNOWN", responseId: "", responseTime: "", responseCode: "", responseMsg: "no answer" }, id.request_time);
      const result = await p.merchantClient.resolveUnknownOrders({});
      expect(result.succeeded).to.be.at.least(1);
      const { order } = await p.merchantClient.getOrder({ requestId: id.request_id });
      expect(order?.state).to.equal("SUCCESS");
    });

    it("closes an order the payment system never received through its signed CloseOrder; unsigned closes are refused", async () => {
      const old = clock.secondsAgo(3_600);
      const requestId = `${idPrefix(old)}777777`;
      await expectRefused(unsigned.client.closeOrder({ requestId, orderType: OrderType.PAYMENT }), Code.Unauthenticated, /x-merchant-id/);
      expect(await recorded(requestId)).to.equal(false);
      const knex = p.merchant.db.knex;
      await insertOrder(knex, { requestId, orderType: "PAYMENT", salerId: "auth_close", amount: 70n, requestTime: old, state: "INIT", responseId: "", responseTime: "", responseCode: "", responseMsg: "", fault: null }, old);
      const result = await p.merchantClient.resolveUnknownOrders({});
      expect(result.failed).to.be.at.least(1);
      expect((await p.merchantClient.getOrder({ requestId })).order?.state).to.equal("FAIL");
      expect(await p.payment.db.knex("payment_orders").where({ request_id: requestId }).first("response_code")).to.deep.equal({ response_code: "CLOSED" });
    });

    it("refuses the orders of a merchant system that has no key, which records them as FAIL", async () => {
      const store = freshStore(backend, "merchant");
      const keyless = await startMerchantSystem(merchantConfig(store, p.payment.server.grpcAddress), silentLogger);
      const client = createGrpcClient(MerchantService, keyless.server.grpcAddress);
      try {
        const before = await orderRows();
        const { order } = await client.client.pay({ salerId: "auth_keyless", totalFee: 100n });
        expect(order?.state).to.equal("FAIL");
        expect(order?.responseMsg).to.match(/^refused by the payment system: x-merchant-id header is required/);
        expect(await orderRows()).to.equal(before);
      } finally {
        client.close();
        await keyless.close();
        await store.drop();
      }
    });

    it("leaves the other calls open: balances and account lists need no signature", async () => {
      const { accounts } = await unsigned.client.listAccounts({});
      expect(accounts.map((a) => a.salerId)).to.include("auth_m1");
    });
  });
}
