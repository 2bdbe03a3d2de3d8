/**
 * Refusals on the wire: a request that breaks a field rule is INVALID_ARGUMENT naming the field
 * on every transport and writes nothing; the JSON gateway refuses malformed JSON, unknown fields
 * and fractional amounts the same way; a failure inside a service reaches the client as INTERNAL
 * with a generic message, never with SQL or a path.
 */
import { rmSync, writeFileSync } from "node:fs";
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { backends, startPlatform, type Platform } from "../harness.js";
import { callerFor, errorFromJson, TRANSPORTS, type ServiceCaller } from "./clients.js";
import { TARGET_NAMES, targetsOf, type ContractTarget } from "./targets.js";
import { postJson } from "../support/http.js";
import { requestIdentityJson } from "../support/requestIdentity.js";

async function refusal(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    expect(err).to.be.instanceOf(ConnectError);
    return err as ConnectError;
  }
  throw new Error("the call succeeded; it should have been refused");
}

async function withCaller<T>(caller: ServiceCaller, fn: (c: ServiceCaller) => Promise<T>): Promise<T> {
  try {
    return await fn(caller);
  } finally {
    caller.close();
  }
}

/** The services whose probe request carries total_fee. */
const AMOUNT_TARGETS: string[] = ["payment", "merchant"];

/** What SQL text, a file path or a stack would look like in a message. */
const LEAK = /select|insert|update|delete|from\s|into\s|table|sqlite|mysql|mariadb|ER_|errno|ENOTDIR|\/tmp\/|\bat\s.*\(|\.ts:\d+/i;

for (const backend of backends()) {
  describe(`contract: refusals [${backend.name}]`, () => {
    let p: Platform;
    let targets: ContractTarget[];
    before(async () => {
      p = await startPlatform(backend);
      targets = targetsOf(p);
    });
    after(async () => p?.close());

    for (const transport of TRANSPORTS) {
      it(`refuses a zero amount with INVALID_ARGUMENT naming total_fee through ${transport}, writing nothing`, async () => {
        const payment = targets.find((t) => t.name === "payment")!;
        const err = await withCaller(callerFor(transport, payment.service, payment.server), (c) =>
          refusal(c.unary("Pay", { ...requestIdentityJson(), saler_id: `zero_${transport}`, total_fee: "0" })),
        );
        expect(err.code).to.equal(Code.InvalidArgument);
        expect(err.rawMessage).to.match(/^total_fee: /);
        const missing = await refusal(p.paymentClient.getBalance({ salerId: `zero_${transport}` }));
        expect(missing.code, "no account was created").to.equal(Code.NotFound);
      });

      it(`refuses a bad saler_id at the merchant with INVALID_ARGUMENT naming it through ${transport}, writing nothing`, async () => {
        const merchant = targets.find((t) => t.name === "merchant")!;
        const err = await withCaller(callerFor(transport, merchant.service, merchant.server), (c) =>
          refusal(c.unary("Pay", { saler_id: "no spaces allowed", total_fee: "100" })),
        );
        expect(err.code).to.equal(Code.InvalidArgument);
        expect(err.rawMessage).to.match(/^saler_id: /);
        const { orders } = await p.merchantClient.listOrders({});
        expect(orders.filter((o) => o.salerId === "no spaces allowed")).to.have.length(0);
      });
    }

    for (const name of TARGET_NAMES) {
      describe(`the ${name} JSON gateway`, () => {
        const target = () => targets.find((t) => t.name === name)!;
        const path = () => `/${target().service.typeName}/${target().unary.method}`;

        it("refuses malformed JSON with 400 invalid_argument", async () => {
          const res = await postJson(target().server.httpUrl + path(), `{"saler_id": "saler1", "total_fee": `);
          expect(res.status).to.equal(400);
          expect(errorFromJson(res.text).code).to.equal(Code.InvalidArgument);
        });

        it("refuses an unknown field with invalid_argument naming it", async () => {
          const body = { ...target().unary.request(), refund_to: "saler9" };
          const res = await postJson(target().server.httpUrl + path(), JSON.stringify(body));
          expect(res.status).to.equal(400);
          const err = errorFromJson(res.text);
          expect(err.code).to.equal(Code.InvalidArgument);
          expect(err.rawMessage).to.contain("refund_to");
        });

        if (!AMOUNT_TARGETS.includes(name)) return;
        for (const amount of ['"1.5"', "1.5", '"100.01"']) {
          it(`refuses the fractional amount ${amount} with invalid_argument naming the field`, async () => {
            const body = JSON.stringify(target().unary.request()).replace(/"total_fee":"100"/, `"total_fee":${amount}`);
            expect(body, "the probe carries total_fee").to.contain(`"total_fee":${amount}`);
            const res = await postJson(target().server.httpUrl + path(), body);
            expect(res.status).to.equal(400);
            const err = errorFromJson(res.text);
            expect(err.code).to.equal(Code.InvalidArgument);
            expect(err.rawMessage).to.contain("total_fee");
          });
        }

        it("refuses a number beyond int64 for an amount", async () => {
          const body = JSON.stringify(target().unary.request()).replace(/"total_fee":"100"/, `"total_fee":"9223372036854775808"`);
          const res = await postJson(target().server.httpUrl + path(), body);
          expect(res.status).to.equal(400);
          expect(errorFromJson(res.text).rawMessage).to.contain("total_fee");
        });
      });
    }

    it("refuses a fractional withdraw_money on the payment gateway naming it", async () => {
      const body = JSON.stringify({ ...requestIdentityJson(), withdraw_money: "0.5", saler_id: "saler1" });
      const res = await postJson(p.payment.server.httpUrl + "/payment.v1.PaymentService/Withdraw", body);
      expect(res.status).to.equal(400);
      expect(errorFromJson(res.text).rawMessage).to.contain("withdraw_money");
    });

    it("refuses a withdrawal whose request_id does not start with its request_time, naming request_id", async () => {
      const body = JSON.stringify({ request_time: "2019-08-29 17:16:21", request_id: "20190829171620334455", withdraw_money: "100", saler_id: "saler1" });
      const res = await postJson(p.payment.server.httpUrl + "/payment.v1.PaymentService/Withdraw", body);
      expect(res.status).to.equal(400);
      const err = errorFromJson(res.text);
      expect(err.code).to.equal(Code.InvalidArgument);
      expect(err.rawMessage).to.match(/^request_id: /);
    });
  });

  describe(`contract: internal failures do not leak [${backend.name}]`, () => {
    let p: Platform;
    before(async () => {
      p = await startPlatform(backend);
      // Break the storage under the running services: every write now fails inside the database,
      // and the reconciliation directory is a plain file.
      await p.payment.db.knex.schema.dropTable("payment_orders");
      await p.merchant.db.knex.schema.dropTable("merchant_orders");
      rmSync(p.reconDir, { recursive: true, force: true });
      writeFileSync(p.reconDir, "not a directory");
    });
    after(async () => p?.close());

    for (const transport of TRANSPORTS) {
      it(`answers INTERNAL "internal error" without SQL or paths through ${transport}`, async () => {
        for (const target of targetsOf(p)) {
          const err = await withCaller(callerFor(transport, target.service, target.server), (c) =>
            refusal(c.unary(target.unary.method, target.unary.request())),
          );
          expect(err.code, `${target.name}: ${err.rawMessage}`).to.equal(Code.Internal);
          expect(err.rawMessage).to.equal("internal error");
          expect(err.rawMessage).not.to.match(LEAK);
        }
      });
    }
  });
}
