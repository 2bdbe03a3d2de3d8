/** The OpenAPI generator, checked against the descriptors it is built from. */
import { expect } from "chai";
import SwaggerParser from "@apidevtools/swagger-parser";
import { createFileRegistry, fromJson, ScalarType, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { file_google_protobuf_timestamp, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { MerchantService } from "../../gen/merchant/v1/merchant_pb.js";
import { ReconService } from "../../gen/recon/v1/recon_pb.js";
import { comments_payment_v1_payment } from "../../gen/payment/v1/payment_comments.js";
import { openApiDocument, type OpenApiDocument, type SchemaObject } from "../../services/shared/rpc/openapi.js";
import { paymentApiDocument } from "../../services/payment/apiDocs.js";
import { merchantApiDocument } from "../../services/merchant/apiDocs.js";
import { reconApiDocument } from "../../services/recon/apiDocs.js";

const documents: [string, DescService, () => OpenApiDocument][] = [
  ["payment", PaymentService, paymentApiDocument],
  ["merchant", MerchantService, merchantApiDocument],
  ["recon", ReconService, reconApiDocument],
];

/** The schema a property points at, through a plain or an allOf-wrapped $ref. */
function target(doc: OpenApiDocument, s: SchemaObject): SchemaObject {
  const ref = s.$ref ?? s.allOf?.[0]?.$ref;
  if (!ref) return s;
  const found = doc.components.schemas[ref.replace("#/components/schemas/", "")];
  if (!found) throw new Error(`dangling ${ref}`);
  return found;
}

function refName(s: SchemaObject): string | undefined {
  return (s.$ref ?? s.allOf?.[0]?.$ref)?.replace("#/components/schemas/", "");
}

/** Every message reachable from the service's unary methods. */
function reachableMessages(service: DescService): DescMessage[] {
  const seen = new Map<string, DescMessage>();
  const visit = (m: DescMessage) => {
    if (seen.has(m.typeName)) return;
    seen.set(m.typeName, m);
    for (const f of m.fields) if (f.message) visit(f.message);
  };
  for (const method of service.methods) if (method.methodKind === "unary") (visit(method.input), visit(method.output));
  return [...seen.values()];
}

for (const [name, service, build] of documents) {
  describe(`OpenAPI document of ${service.typeName}`, () => {
    const doc = build();

    it("has POST /<package.Service>/<Method> for every unary RPC and no path for streaming ones", () => {
      const unary = service.methods.filter((m) => m.methodKind === "unary").map((m) => `/${service.typeName}/${m.name}`);
      expect(Object.keys(doc.paths).sort()).to.deep.equal([...unary].sort());
      for (const m of service.methods) {
        const op = doc.paths[`/${service.typeName}/${m.name}`]?.post;
        if (m.methodKind !== "unary") continue;
        expect(refName(op!.requestBody.content["application/json"]!.schema), m.name).to.equal(m.input.typeName);
        const ok = op!.responses["200"] as { content: Record<string, { schema: SchemaObject }> };
        expect(refName(ok.content["application/json"]!.schema), m.name).to.equal(m.output.typeName);
      }
      const streaming = service.methods.filter((m) => m.methodKind !== "unary");
      const tag = doc.tags.find((t) => t.name === service.typeName);
      for (const m of streaming) expect(tag?.description, m.name).to.contain(`\`${m.name}\``);
    });

    it("names properties exactly as the proto fields, with 64-bit integers as strings", () => {
      const messages = reachableMessages(service);
      expect(messages.length).to.be.greaterThan(3);
      for (const m of messages) {
        const schema = doc.components.schemas[m.typeName];
        expect(schema, m.typeName).to.not.equal(undefined);
        expect(Object.keys(schema!.properties ?? {}), m.typeName).to.deep.equal(m.fields.map((f) => f.name));
        for (const f of m.fields) {
          const p = schema!.properties![f.name]!;
          const is64 = f.scalar === ScalarType.INT64 || f.scalar === ScalarType.UINT64;
          if (f.fieldKind === "scalar" && is64) {
            expect(p.type, `${m.typeName}.${f.name}`).to.equal("string");
            expect(p.format, `${m.typeName}.${f.name}`).to.match(/^u?int64$/);
          }
          if (f.fieldKind === "list") expect(p.type, `${m.typeName}.${f.name}`).to.equal("array");
          if (f.fieldKind === "enum") {
            expect(target(doc, p).enum, `${m.typeName}.${f.name}`).to.deep.equal(f.enum.values.map((v) => v.name));
          }
          if (f.fieldKind === "message") expect(refName(p), `${m.typeName}.${f.name}`).to.equal(f.message.typeName);
          if (f.oneof) expect(p["x-protobuf-oneof"], `${m.typeName}.${f.name}`).to.equal(f.oneof.name);
        }
      }
    });

    it("has examples that the endpoint's JSON parser accepts as they are", () => {
      for (const m of service.methods) {
        const op = doc.paths[`/${service.typeName}/${m.name}`]?.post;
        if (!op) continue;
        const req = op.requestBody.content["application/json"]!.example;
        if (req !== undefined) expect(() => fromJson(m.input, req as never), `${m.name} request`).to.not.throw();
        const res = (op.responses["200"] as { content: Record<string, { example?: unknown }> }).content["application/json"]!.example;
        if (res !== undefined) expect(() => fromJson(m.output, res as never), `${m.name} response`).to.not.throw();
      }
      if (name !== "recon") {
        for (const method of ["Pay", "Withdraw"]) {
          expect(doc.paths[`/${service.typeName}/${method}`]!.post.requestBody.content["application/json"]!.example, method).to.not.equal(undefined);
        }
      }
    });

    it("validates as OpenAPI 3.0", async () => {
      await SwaggerParser.validate(structuredClone(doc) as never);
    });
  });
}

describe("OpenAPI generator", () => {
  it("uses the seed's messages as the examples of payment.v1 Pay and Withdraw", () => {
    const doc = paymentApiDocument();
    const example = (m: string) => doc.paths[`/payment.v1.PaymentService/${m}`]!.post.requestBody.content["application/json"]!.example;
    expect(JSON.stringify(example("Pay"))).to.equal(
      JSON.stringify({ request_time: "2019-08-29 17:15:20", request_id: "20190829171520123456", saler_id: "saler2", total_fee: "100" }),
    );
    expect(example("Withdraw")).to.deep.equal({ request_time: "2019-08-29 17:16:21", request_id: "20190829171621334455", withdraw_money: "100", saler_id: "saler1" });
  });

  it("lists the order export both order-keeping systems serve, and describes the shared order vocabulary", () => {
    for (const doc of [paymentApiDocument(), merchantApiDocument()]) {
      const tag = doc.tags.find((t) => t.name === "order.v1.OrderExportService");
      expect(tag?.description).to.contain("`ExportOrders` (server-streaming: ExportOrders streams the successful orders of one type");
      expect(Object.keys(doc.paths).filter((p) => p.startsWith("/order.v1."))).to.deep.equal([]);
    }
    for (const doc of [paymentApiDocument(), merchantApiDocument(), reconApiDocument()]) {
      const orderType = doc.components.schemas["order.v1.OrderType"]!;
      expect(orderType.description).to.contain("OrderType tells payments, withdrawals and refunds apart.");
      expect(orderType.enum).to.deep.equal(["ORDER_TYPE_UNSPECIFIED", "ORDER_TYPE_PAYMENT", "ORDER_TYPE_WITHDRAWAL", "ORDER_TYPE_REFUND"]);
    }
  });

  it("describes elements with their proto comments", () => {
    const doc = paymentApiDocument();
    const pay = doc.components.schemas["payment.v1.PayRequest"]!;
    expect(pay.description).to.equal(comments_payment_v1_payment["payment.v1.PayRequest"]);
    expect(pay.properties!.saler_id!.description).to.equal("The receiving account: 1..64 characters of [A-Za-z0-9_-].");
    expect(doc.paths["/payment.v1.PaymentService/Pay"]!.post.summary).to.equal(
      "Pay records a payment to saler_id and buffers its credit. Idempotent by request_id.",
    );
    // A described reference keeps its description through allOf (siblings of $ref are ignored in 3.0).
    const account = doc.components.schemas["payment.v1.GetBalanceResponse"]!.properties!.account!;
    expect(account.$ref ?? account.allOf?.[0]?.$ref).to.equal("#/components/schemas/payment.v1.Account");
  });

  it("documents Connect errors as {code, message}", () => {
    const doc = paymentApiDocument();
    const error = doc.components.schemas["connect.error"]!;
    expect(error.properties!.code!.enum).to.include.members(["invalid_argument", "not_found", "internal", "unavailable"]);
    expect(error.properties!.message!.type).to.equal("string");
    const op = doc.paths["/payment.v1.PaymentService/Pay"]!.post;
    expect(op.responses.default).to.deep.equal({ $ref: "#/components/responses/ConnectError" });
  });

  it("maps maps, bytes, unsigned 64-bit, nested enums and well-known types", async () => {
    const proto = fromJson(FileDescriptorProtoSchema, {
      name: "test/v1/kinds.proto",
      package: "test.v1",
      syntax: "proto3",
      dependency: ["google/protobuf/timestamp.proto"],
      messageType: [
        {
          name: "Kinds",
          field: [
            { name: "labels", number: 1, type: "TYPE_MESSAGE", label: "LABEL_REPEATED", typeName: ".test.v1.Kinds.LabelsEntry" },
            { name: "blob", number: 2, type: "TYPE_BYTES", label: "LABEL_OPTIONAL" },
            { name: "big", number: 3, type: "TYPE_UINT64", label: "LABEL_OPTIONAL" },
            { name: "color", number: 4, type: "TYPE_ENUM", label: "LABEL_OPTIONAL", typeName: ".test.v1.Kinds.Color" },
            { name: "at", number: 5, type: "TYPE_MESSAGE", label: "LABEL_OPTIONAL", typeName: ".google.protobuf.Timestamp" },
            { name: "ratio", number: 6, type: "TYPE_DOUBLE", label: "LABEL_OPTIONAL" },
          ],
          nestedType: [
            {
              name: "LabelsEntry",
              field: [
                { name: "key", number: 1, type: "TYPE_STRING", label: "LABEL_OPTIONAL" },
                { name: "value", number: 2, type: "TYPE_INT64", label: "LABEL_OPTIONAL" },
              ],
              options: { mapEntry: true },
            },
          ],
          enumType: [{ name: "Color", value: [{ name: "COLOR_UNSPECIFIED", number: 0 }, { name: "COLOR_RED", number: 1 }] }],
        },
      ],
      service: [{ name: "KindsService", method: [{ name: "Echo", inputType: ".test.v1.Kinds", outputType: ".test.v1.Kinds" }] }],
    });
    const registry = createFileRegistry(proto, (name) => (name === "google/protobuf/timestamp.proto" ? file_google_protobuf_timestamp : undefined));
    const service = registry.getService("test.v1.KindsService")!;
    const doc = openApiDocument({ title: "kinds", services: [service] });
    const p = doc.components.schemas["test.v1.Kinds"]!.properties!;
    expect(p.labels).to.deep.include({ type: "object" });
    expect(p.labels!.additionalProperties).to.deep.include({ type: "string", format: "int64" });
    expect(p.blob).to.deep.include({ type: "string", format: "byte" });
    expect(p.big).to.deep.include({ type: "string", format: "uint64" });
    expect(p.ratio).to.deep.include({ type: "number", format: "double" });
    expect(p.at).to.deep.include({ type: "string", format: "date-time" });
    expect(doc.components.schemas["test.v1.Kinds.Color"]!.enum).to.deep.equal(["COLOR_UNSPECIFIED", "COLOR_RED"]);
    expect(doc.components.schemas).to.not.have.property("test.v1.Kinds.LabelsEntry");
    await SwaggerParser.validate(structuredClone(doc) as never);
  });

  it("is refused by the validator when a reference dangles (the validation is real)", async () => {
    const doc = structuredClone(paymentApiDocument());
    delete doc.components.schemas["payment.v1.Account"];
    let failed = false;
    try {
      await SwaggerParser.validate(doc as never);
    } catch {
      failed = true;
    }
    expect(failed).to.equal(true);
  });
});
