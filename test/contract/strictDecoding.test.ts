/**
 * The HTTP port decodes as strictly as the gRPC port. An integer in JSON is a plain decimal string
 * or an exact integer number: "0x10", "0b11", " 100" and the like are INVALID_ARGUMENT naming the
 * field on every RPC that takes an amount (payment and merchant, Pay, Withdraw, Simulate), over
 * the Connect protocol and gRPC-web, and write nothing. A protobuf body that does not decode is
 * INVALID_ARGUMENT on the Connect and gRPC-web protocols too, never INTERNAL.
 */
import { randomBytes } from "node:crypto";
import { expect } from "chai";
import { create, toBinary, type JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { GetBalanceRequestSchema } from "../../gen/payment/v1/payment_pb.js";
import { backends, startPlatform, type Platform } from "../harness.js";
import { errorFromJson } from "./clients.js";
import { postJson } from "../support/http.js";
import { requestIdentity, requestIdentityJson } from "../support/requestIdentity.js";

/** Written as JSON strings, each names an integer in a notation proto3 JSON does not have. */
const NOT_DECIMAL = ["0x10", "0X1F", "0b11", "0B11", "0o17", "0O17", " 100", "100 ", "\t100", "100\n", "+100", "0100", "00", "1e2", "1E2", "1_000", "１００", ""];

function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

async function post(url: string, contentType: string, body: Uint8Array | string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: "POST", headers: { "content-type": contentType, ...headers }, body });
  return { status: res.status, headers: res.headers, bytes: new Uint8Array(await res.arrayBuffer()) };
}

/** The end-of-stream error of a Connect streaming answer. */
function endStreamError(bytes: Uint8Array): { code?: string; message?: string } | undefined {
  for (let at = 0; at + 5 <= bytes.length; ) {
    const flags = bytes[at]!;
    const length = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
    const data = bytes.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if (flags & 0x02) return (JSON.parse(new TextDecoder().decode(data)) as { error?: { code?: string; message?: string } }).error;
  }
  return undefined;
}

/** grpc-status and grpc-message of a gRPC-web answer (trailers in the body's last frame). */
function grpcWebStatus(res: { headers: Headers; bytes: Uint8Array }): { status: string | null; message: string } {
  let status = res.headers.get("grpc-status");
  let message = decodeURIComponent(res.headers.get("grpc-message") ?? "");
  for (let at = 0; at + 5 <= res.bytes.length; ) {
    const flags = res.bytes[at]!;
    const length = new DataView(res.bytes.buffer, res.bytes.byteOffset + at + 1, 4).getUint32(0);
    const data = res.bytes.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if (flags & 0x80) {
      for (const line of new TextDecoder().decode(data).split("\r\n")) {
        const [k, ...v] = line.split(":");
        if (k?.trim().toLowerCase() === "grpc-status") status = v.join(":").trim();
        if (k?.trim().toLowerCase() === "grpc-message") message = decodeURIComponent(v.join(":").trim());
      }
    }
  }
  return { status, message };
}

const account = (tag: string) => `nd_${tag}_${randomBytes(4).toString("hex")}`;

for (const backend of backends()) {
  describe(`contract: the HTTP port decodes as strictly as gRPC [${backend.name}]`, function () {
    this.timeout(120_000);
    let p: Platform;
    before(async () => (p = await startPlatform(backend)));
    after(async () => p?.close());

    /** Nothing for this account, at the payment system and at the merchant. */
    async function expectNothingWritten(salerId: string): Promise<void> {
      const balance = await p.paymentClient.getBalance({ salerId }).then(
        () => "exists",
        (err: { code?: Code }) => err.code,
      );
      expect(balance, `no account ${salerId}`).to.equal(Code.NotFound);
      const { orders } = await p.merchantClient.listOrders({ salerId });
      expect(orders, `no merchant order for ${salerId}`).to.have.length(0);
    }

    const cases: { rpc: string; field: string; body: (salerId: string, amount: string) => JsonObject; server: () => Platform["payment"]["server"] }[] = [
      {
        rpc: "/payment.v1.PaymentService/Pay",
        field: "total_fee",
        body: (s, a) => ({ ...requestIdentityJson(), saler_id: s, total_fee: a }),
        server: () => p.payment.server,
      },
      {
        rpc: "/payment.v1.PaymentService/Withdraw",
        field: "withdraw_money",
        body: (s, a) => ({ ...requestIdentityJson(), saler_id: s, withdraw_money: a }),
        server: () => p.payment.server,
      },
      { rpc: "/merchant.v1.MerchantService/Pay", field: "total_fee", body: (s, a) => ({ saler_id: s, total_fee: a }), server: () => p.merchant.server },
      { rpc: "/merchant.v1.MerchantService/Withdraw", field: "withdraw_money", body: (s, a) => ({ saler_id: s, withdraw_money: a }), server: () => p.merchant.server },
      {
        rpc: "/merchant.v1.MerchantService/Simulate",
        field: "max_amount",
        body: (s, a) => ({ order_type: "ORDER_TYPE_PAYMENT", count: 2, concurrency: 1, accounts: 1, account_prefix: s, min_amount: "1", max_amount: a, seed: "1" }),
        server: () => p.merchant.server,
      },
    ];

    for (const c of cases) {
      it(`${c.rpc} refuses ${c.field} in any notation but plain decimal, naming it and writing nothing`, async () => {
        const salerId = account("json");
        const answers: string[] = [];
        for (const amount of NOT_DECIMAL) {
          const res = await postJson(c.server().httpUrl + c.rpc, JSON.stringify(c.body(salerId, amount)));
          const err = res.status === 200 ? undefined : errorFromJson(res.text);
          if (res.status !== 400 || err?.code !== Code.InvalidArgument || !err.rawMessage.startsWith(`${c.field}: `)) {
            answers.push(`${JSON.stringify(amount)}: ${res.status} ${res.text}`);
          }
        }
        expect(answers, "answers other than 400 invalid_argument naming the field").to.deep.equal([]);
        // The same, over gRPC-web with JSON messages.
        const web = await post(`${c.server().httpUrl}${c.rpc}`, "application/grpc-web+json", envelope(0, new TextEncoder().encode(JSON.stringify(c.body(salerId, "0x10")))));
        const status = grpcWebStatus(web);
        expect(status.status, status.message).to.equal(String(Code.InvalidArgument));
        expect(status.message).to.match(new RegExp(`^${c.field}: `));
        await expectNothingWritten(salerId);
      });
    }

    it("refuses a 32-bit integer in hexadecimal too (ListAccounts page_size)", async () => {
      const res = await postJson(p.payment.server.httpUrl + "/payment.v1.PaymentService/ListAccounts", JSON.stringify({ page_size: "0x10" }));
      expect(res.status).to.equal(400);
      expect(errorFromJson(res.text).rawMessage).to.match(/^page_size: /);
    });

    it("accepts an amount as a decimal string or as an exact integer number, and pays exactly that", async () => {
      const salerId = account("ok");
      for (const amount of ['"100"', "100", "1e2", "100.0"]) {
        const body = JSON.stringify({ ...requestIdentityJson(), saler_id: salerId, total_fee: "@" }).replace('"@"', amount);
        const res = await postJson(p.payment.server.httpUrl + "/payment.v1.PaymentService/Pay", body);
        expect(res.status, `${amount}: ${res.text}`).to.equal(200);
        expect(JSON.parse(res.text)).to.include({ total_fee: "100", response_code: "SUCCESS" });
      }
      await p.payment.settlement.run();
      const { account: view } = await p.paymentClient.getBalance({ salerId });
      expect(view?.balance).to.equal(400n);
    });

    it("answers a protobuf body that does not decode with invalid_argument on the Connect protocol, unary and streaming, and on gRPC-web", async () => {
      // A string field (saler_id, 1) whose declared length runs past the end.
      const truncated = Uint8Array.from([0x0a, 0x20, 0x41, 0x42]);
      for (const [server, rpc] of [
        [p.payment.server, "/payment.v1.PaymentService/Pay"],
        [p.payment.server, "/payment.v1.PaymentService/GetBalance"],
        [p.merchant.server, "/merchant.v1.MerchantService/Pay"],
        [p.recon.server, "/recon.v1.ReconService/GetRun"],
      ] as const) {
        const res = await post(`${server.httpUrl}${rpc}`, "application/proto", truncated);
        expect(res.status, rpc).to.equal(400);
        const err = errorFromJson(new TextDecoder().decode(res.bytes));
        expect(err.code, `${rpc}: ${err.rawMessage}`).to.equal(Code.InvalidArgument);
        expect(err.rawMessage).to.contain("cannot decode");
        expect(res.headers.get("x-request-id")).to.be.a("string");

        const web = await post(`${server.httpUrl}${rpc}`, "application/grpc-web+proto", envelope(0, truncated));
        expect(grpcWebStatus(web).status, rpc).to.equal(String(Code.InvalidArgument));
      }
      // A field sent with another wire type than its own is refused as on gRPC.
      const wrongWire = Uint8Array.from([0x0d, 1, 2, 3, 4]); // field 1 (saler_id) as fixed32
      const res = await post(`${p.payment.server.httpUrl}/payment.v1.PaymentService/GetBalance`, "application/proto", wrongWire);
      expect(res.status).to.equal(400);
      expect(errorFromJson(new TextDecoder().decode(res.bytes)).rawMessage).to.contain("wire type");
      // Streaming (ExportOrders): the end of the stream carries the refusal.
      const stream = await post(`${p.payment.server.httpUrl}/order.v1.OrderExportService/ExportOrders`, "application/connect+proto", envelope(0, truncated));
      expect(stream.status).to.equal(200);
      expect(endStreamError(stream.bytes)?.code).to.equal("invalid_argument");
    });

    it("still decodes a well-formed protobuf body on the Connect protocol, also compressed", async () => {
      const salerId = account("proto");
      await p.paymentClient.pay({ ...requestIdentity(), salerId, totalFee: 100n });
      const message = toBinary(GetBalanceRequestSchema, create(GetBalanceRequestSchema, { salerId }));
      const res = await post(`${p.payment.server.httpUrl}/payment.v1.PaymentService/GetBalance`, "application/proto", message);
      expect(res.status, new TextDecoder().decode(res.bytes)).to.equal(200);
      const { gzipSync } = await import("node:zlib");
      const gz = await post(`${p.payment.server.httpUrl}/payment.v1.PaymentService/GetBalance`, "application/proto", gzipSync(message), { "content-encoding": "gzip" });
      expect(gz.status, new TextDecoder().decode(gz.bytes)).to.equal(200);
      // Compressed JSON is checked after decompression.
      const badJson = gzipSync(JSON.stringify({ ...requestIdentityJson(), saler_id: salerId, total_fee: "0x10" }));
      const refused = await post(`${p.payment.server.httpUrl}/payment.v1.PaymentService/Pay`, "application/json", badJson, { "content-encoding": "gzip" });
      expect(refused.status).to.equal(400);
      expect(errorFromJson(new TextDecoder().decode(refused.bytes)).rawMessage).to.match(/^total_fee: /);
    });
  });
}
