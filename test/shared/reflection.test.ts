/** Server reflection on the gRPC ports, used by a real client (buf curl) and by a raw stream. */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect } from "chai";
import * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry, fromBinary, toBinary, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { reflectionService } from "../../services/shared/rpc/reflection.js";
import { comments_payment_v1_payment } from "../../gen/payment/v1/payment_comments.js";
import { comments_merchant_v1_merchant } from "../../gen/merchant/v1/merchant_comments.js";
import { comments_recon_v1_recon } from "../../gen/recon/v1/recon_comments.js";
import { startPlatform, type Platform } from "../harness.js";

const run = promisify(execFile);
const BUF = "node_modules/.bin/buf";
const SEED_PAY = '{"request_time": "2019-08-29 17:15:20", "request_id": "20190829171520123456", "saler_id": "saler2", "total_fee": "100"}';

async function bufCurl(args: string[]): Promise<string> {
  const { stdout } = await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], { timeout: 60_000 });
  return stdout;
}

/** One request/response exchange on a reflection stream, decoded with the reflection descriptors. */
async function reflect(address: string, version: "v1" | "v1alpha", requests: object[]): Promise<Record<string, unknown>[]> {
  const service: DescService = reflectionService(version);
  const method = service.methods[0]!;
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    const call = client.makeBidiStreamRequest(
      `/${service.typeName}/${method.name}`,
      (m: unknown) => Buffer.from(toBinary(method.input, create(method.input, m as never))),
      (b: Buffer) => fromBinary(method.output, b) as unknown as Record<string, unknown>,
    );
    const answers: Record<string, unknown>[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (m: Record<string, unknown>) => answers.push(m));
      call.on("end", resolve);
      call.on("error", reject);
    });
    for (const r of requests) call.write(r);
    call.end();
    await done;
    return answers;
  } finally {
    client.close();
  }
}

type Answer = { messageResponse: { case: string; value: Record<string, unknown> } };

describe("gRPC server reflection [embedded]", () => {
  let p: Platform;
  before(async () => {
    p = await startPlatform({ name: "embedded" });
  });
  after(async () => p?.close());

  it("lets buf curl list every service and method without a schema", async () => {
    const services = (await bufCurl([`http://${p.payment.server.grpcAddress}`, "--list-services"])).trim().split("\n");
    expect(services).to.include.members(["payment.v1.PaymentService", "order.v1.OrderExportService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"]);
    const methods = (await bufCurl([`http://${p.merchant.server.grpcAddress}`, "--list-methods"])).trim().split("\n");
    const merchant = methods.filter((m) => m.startsWith("merchant.v1."));
    expect(merchant.sort()).to.deep.equal(
      ["CountOrders", "GetOrder", "ListOrders", "Pay", "Refund", "ResolveUnknownOrders", "Simulate", "Withdraw"].map((m) => `merchant.v1.MerchantService/${m}`),
    );
    // The merchant's orders are exported through the order contract both systems serve.
    expect(methods.filter((m) => m.startsWith("order.v1."))).to.deep.equal(["order.v1.OrderExportService/ExportOrders"]);
    const recon = (await bufCurl([`http://${p.recon.server.grpcAddress}`, "--list-services"])).trim().split("\n");
    expect(recon).to.include("recon.v1.ReconService");
  });

  it("lets buf curl call Pay with the seed's JSON, through v1 and through v1alpha", async () => {
    const out = JSON.parse(await bufCurl(["-d", SEED_PAY, `http://${p.payment.server.grpcAddress}/payment.v1.PaymentService/Pay`]));
    expect(out).to.include({ requestId: "20190829171520123456", salerId: "saler2", totalFee: "100", responseCode: "SUCCESS" });
    const again = JSON.parse(
      await bufCurl(["--reflect-protocol", "grpc-v1alpha", "-d", SEED_PAY, `http://${p.payment.server.grpcAddress}/payment.v1.PaymentService/Pay`]),
    );
    // Idempotent by request_id: the retry gets the original answer.
    expect(again.responseId).to.equal(out.responseId);
    const order = await p.paymentClient.queryOrder({ requestId: "20190829171520123456" });
    expect(order.found).to.equal(true);
  });

  it("lets buf curl call the health service by name", async () => {
    const out = JSON.parse(await bufCurl([`http://${p.merchant.server.grpcAddress}/grpc.health.v1.Health/Check`]));
    expect(out).to.deep.equal({ status: "SERVING" });
  });

  for (const version of ["v1", "v1alpha"] as const) {
    it(`describes a symbol with its file, and answers NOT_FOUND for an unknown one (${version})`, async () => {
      const answers = (await reflect(p.payment.server.grpcAddress, version, [
        { host: "", messageRequest: { case: "fileContainingSymbol", value: "payment.v1.PayRequest" } },
        { host: "", messageRequest: { case: "fileContainingSymbol", value: "payment.v1.NoSuchThing" } },
        { host: "", messageRequest: { case: "fileByFilename", value: "payment/v1/payment.proto" } },
        { host: "", messageRequest: { case: "listServices", value: "" } },
      ])) as unknown as Answer[];
      expect(answers).to.have.length(4);
      const [symbol, missing, byName, list] = answers;
      expect(symbol!.messageResponse.case).to.equal("fileDescriptorResponse");
      const files = (symbol!.messageResponse.value.fileDescriptorProto as Uint8Array[]).map((b) => fromBinary(FileDescriptorProtoSchema, b));
      expect(files[0]!.name).to.equal("payment/v1/payment.proto");
      // The descriptor is usable as a schema: the fields of PayRequest come out of it.
      // The requested file comes first, then its imports; a descriptor set lists imports first.
      const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: [...files].reverse() }));
      expect(registry.getMessage("payment.v1.PayRequest")!.fields.map((f) => f.name)).to.deep.equal(["request_time", "request_id", "saler_id", "total_fee"]);
      expect(registry.getService("payment.v1.PaymentService")!.methods.map((m) => m.name)).to.include.members(["Pay", "Withdraw", "ExportBalances"]);
      // payment.proto imports the order vocabulary; its enum comes with it.
      expect(files.map((f) => f.name)).to.include("order/v1/order.proto");
      expect(registry.getMessage("payment.v1.QueryOrderRequest")!.field.orderType!.enum!.typeName).to.equal("order.v1.OrderType");
      expect(missing!.messageResponse.case).to.equal("errorResponse");
      expect(missing!.messageResponse.value.errorCode).to.equal(grpc.status.NOT_FOUND);
      expect(byName!.messageResponse.case).to.equal("fileDescriptorResponse");
      expect(list!.messageResponse.case).to.equal("listServicesResponse");
      const names = (list!.messageResponse.value.service as { name: string }[]).map((s) => s.name);
      expect(names).to.include.members(["payment.v1.PaymentService", "order.v1.OrderExportService", `grpc.reflection.${version}.ServerReflection`]);
    });
  }

  it("serves every contract's descriptor with its comments (source_code_info), as grpcurl describe shows them", async () => {
    for (const [address, service, comments] of [
      [p.payment.server.grpcAddress, "payment.v1.PaymentService", comments_payment_v1_payment],
      [p.merchant.server.grpcAddress, "merchant.v1.MerchantService", comments_merchant_v1_merchant],
      [p.recon.server.grpcAddress, "recon.v1.ReconService", comments_recon_v1_recon],
    ] as const) {
      const [answer] = (await reflect(address, "v1", [{ host: "", messageRequest: { case: "fileContainingSymbol", value: service } }])) as unknown as Answer[];
      const file = fromBinary(FileDescriptorProtoSchema, (answer!.messageResponse.value.fileDescriptorProto as Uint8Array[])[0]!);
      expect(file.sourceCodeInfo?.location.length ?? 0, service).to.be.greaterThan(10);
      const svcIndex = file.service.findIndex((s) => `${file.package}.${s.name}` === service);
      const svc = file.service[svcIndex]!;
      let checked = 0;
      for (const [j, m] of svc.method.entries()) {
        const expected = comments[`${service}.${m.name}`];
        if (!expected) continue;
        // FileDescriptorProto.service = 6, ServiceDescriptorProto.method = 2.
        const loc = file.sourceCodeInfo!.location.find((l) => l.path.join(".") === `6.${svcIndex}.2.${j}`);
        const text = (loc?.leadingComments ?? "")
          .split("\n")
          .map((line) => line.replace(/^ /, "").trimEnd())
          .join("\n")
          .trim();
        expect(text, `${service}.${m.name}`).to.equal(expected);
        checked++;
      }
      expect(checked, service).to.be.greaterThan(2);
    }
  });
});
