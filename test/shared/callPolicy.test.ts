/**
 * The call policy every served call goes through, on a real server (serve() on loopback) with
 * handlers written for the test: the server-side deadline for unary and streaming calls, request
 * ids (echoed when well-formed, made up otherwise, present on refusals before any handler),
 * undecodable protobuf refused as INVALID_ARGUMENT, a thrown non-Connect error shown as
 * "internal error" only, and a keep-alive connection that still serves after a refused body.
 */
import * as http from "node:http";
import { expect } from "chai";
import * as grpc from "@grpc/grpc-js";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { createGrpcClient, type GrpcClientHandle } from "../../services/shared/rpc/grpcClient.js";
import { bind, serve, type RunningServer } from "../../services/shared/rpc/server.js";
import { silentLogger } from "../harness.js";

const never = () => new Promise<never>(() => {});

const unused = () => {
  throw new ConnectError("not served in this test", Code.Unimplemented);
};

/** Settle never answers, GetBalance throws what looks like a driver error, ExportBalances stalls after one batch. */
const impl: ServiceImpl<typeof PaymentService> = {
  pay: unused,
  withdraw: unused,
  queryOrder: unused,
  closeOrder: unused,
  refund: unused,
  async settle() {
    return never();
  },
  async getBalance() {
    throw new Error("SQLITE_ERROR: no such table: accounts at /srv/app/services/payment/orders.ts:12");
  },
  async listAccounts() {
    return { accounts: [], nextPageToken: "" };
  },
  async *exportBalances() {
    yield { balances: [] };
    await never();
  },
};

function rawPost(server: RunningServer, agent: http.Agent, path: string, body: Buffer, contentType: string): Promise<{ status: number; reused: boolean; body: string }> {
  const url = new URL(server.httpUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, method: "POST", agent, headers: { "content-type": contentType, "content-length": body.length } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString("latin1")));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

function envelope(data: Buffer): Buffer {
  const out = Buffer.alloc(5 + data.length);
  out.writeUInt32BE(data.length, 1);
  data.copy(out, 5);
  return out;
}

describe("call policy on a real server", function () {
  this.timeout(60_000);
  let server: RunningServer;
  let client: GrpcClientHandle<typeof PaymentService>;

  before(async () => {
    server = await serve({
      name: "policy",
      listen: { host: "127.0.0.1", grpcPort: 0, httpPort: 0 },
      services: [bind(PaymentService, impl)],
      logger: silentLogger,
      maxMessageBytes: 64 * 1024,
      limits: { deadlineMs: 300, longDeadlineMs: 600, maxConcurrentStreams: 100 },
    });
    client = createGrpcClient(PaymentService, server.grpcAddress);
  });
  after(async () => {
    client?.close();
    await server?.close(1000);
  });

  it("ends a unary call its handler never answers with DEADLINE_EXCEEDED, over gRPC and JSON", async () => {
    const err = ConnectError.from(await client.client.settle({}).catch((e: unknown) => e));
    expect(err.code).to.equal(Code.DeadlineExceeded);
    expect(err.rawMessage).to.equal("deadline of 300 ms exceeded");
    const res = await fetch(`${server.httpUrl}/payment.v1.PaymentService/Settle`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(res.status).to.equal(504);
    expect(((await res.json()) as { code: string }).code).to.equal("deadline_exceeded");
  });

  it("ends a stalled stream with DEADLINE_EXCEEDED after what it sent", async () => {
    let received = 0;
    let err: ConnectError | undefined;
    try {
      for await (const _ of client.client.exportBalances({})) {
        void _;
        received++;
      }
    } catch (e) {
      err = ConnectError.from(e);
    }
    expect(received).to.equal(1);
    expect(err?.code).to.equal(Code.DeadlineExceeded);
    expect(err?.rawMessage).to.equal("deadline of 600 ms exceeded");
  });

  it("shows a thrown error as INTERNAL 'internal error' only, with the caller's request id", async () => {
    const err = ConnectError.from(await client.client.getBalance({ salerId: "x" }, { headers: { "x-request-id": "trace-42" } }).catch((e: unknown) => e));
    expect(err.code).to.equal(Code.Internal);
    expect(err.rawMessage).to.equal("internal error");
    expect(err.metadata.get("x-request-id")).to.equal("trace-42");
    const res = await fetch(`${server.httpUrl}/payment.v1.PaymentService/GetBalance`, { method: "POST", headers: { "content-type": "application/json", "x-request-id": "trace-43" }, body: "{}" });
    expect(await res.json()).to.deep.equal({ code: "internal", message: "internal error" });
    expect(res.headers.get("x-request-id")).to.equal("trace-43");
  });

  it("returns a request id on success, and makes one up when the caller's is malformed", async () => {
    let header: Headers | undefined;
    await client.client.listAccounts({}, { headers: { "x-request-id": "bad id with spaces" }, onHeader: (h: Headers) => (header = h) });
    expect(header?.get("x-request-id")).to.match(/^[0-9a-f-]{36}$/);
    const res = await fetch(`${server.httpUrl}/payment.v1.PaymentService/ListAccounts`, { method: "POST", headers: { "content-type": "application/json", "x-request-id": "ok.id:7" }, body: "{}" });
    expect(res.status).to.equal(200);
    expect(res.headers.get("x-request-id")).to.equal("ok.id:7");
    const refused = await fetch(`${server.httpUrl}/payment.v1.PaymentService/ListAccounts`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    expect(refused.status).to.equal(400);
    expect(refused.headers.get("x-request-id"), "a refusal before any handler has one too").to.match(/^[0-9a-f-]{36}$/);
  });

  it("refuses undecodable protobuf and a field sent with the wrong wire type as INVALID_ARGUMENT with a request id", async () => {
    const raw = new grpc.Client(server.grpcAddress, grpc.credentials.createInsecure());
    const send = (bytes: number[]) =>
      new Promise<grpc.ServiceError>((resolve, reject) =>
        raw.makeUnaryRequest("/payment.v1.PaymentService/ListAccounts", (b: Buffer) => b, (b: Buffer) => b, Buffer.from(bytes), new grpc.Metadata(), {}, (err) =>
          err ? resolve(err) : reject(new Error("accepted")),
        ),
      );
    try {
      const truncated = await send([0x12, 0x05, 0x61]);
      expect(truncated.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(truncated.details).to.match(/^cannot decode payment\.v1\.ListAccountsRequest: /);
      expect(truncated.metadata.get("x-request-id")[0]).to.be.a("string");
      // page_size (field 1, int32) as a length-delimited "A": protobuf-es alone would read it as 65.
      const wrongWire = await send([0x0a, 0x01, 0x41]);
      expect(wrongWire.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(wrongWire.details).to.match(/field page_size \(1\) arrived with wire type 2/);
      const badUtf8 = await send([0x12, 0x02, 0xff, 0xfe]);
      expect(badUtf8.code).to.equal(grpc.status.INVALID_ARGUMENT);
    } finally {
      raw.close();
    }
  });

  it("keeps serving on a keep-alive connection after refusing an oversized streaming request", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const big = envelope(Buffer.from(JSON.stringify({ cutoff_time: "x".repeat(200 * 1024) })));
      const refused = await rawPost(server, agent, "/payment.v1.PaymentService/ExportBalances", big, "application/connect+json");
      expect(refused.status).to.equal(200);
      expect(refused.body).to.contain('"code":"resource_exhausted"');
      const next = await rawPost(server, agent, "/payment.v1.PaymentService/ListAccounts", Buffer.from("{}"), "application/json");
      expect(next.status).to.equal(200);
      expect(next.reused, "the same connection answered").to.equal(true);
    } finally {
      agent.destroy();
    }
  });
});
