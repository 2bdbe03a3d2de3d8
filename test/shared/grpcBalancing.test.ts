/**
 * createGrpcClient over several instances: a list of addresses is balanced round-robin, and an
 * instance that goes away (its server shut down, its connections closed) stops receiving calls
 * while the others take them all. Real grpc-js servers on loopback ports.
 */
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { PaymentService } from "../../gen/payment/v1/payment_pb.js";
import { addGrpcService } from "../../services/shared/rpc/grpcServer.js";
import { createGrpcClient, grpcTarget } from "../../services/shared/rpc/grpcClient.js";

interface Instance {
  server: grpc.Server;
  port: number;
  calls: number;
}

async function startInstance(): Promise<Instance> {
  const server = new grpc.Server();
  const instance = { server, port: 0, calls: 0 };
  const impl: Record<string, unknown> = {};
  for (const m of PaymentService.methods) {
    impl[m.localName] =
      m.methodKind === "unary"
        ? async () => {
            instance.calls++;
            return {};
          }
        : async function* () {};
  }
  addGrpcService(server, PaymentService, impl as unknown as ServiceImpl<typeof PaymentService>);
  instance.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  return instance;
}

describe("gRPC client over several instances", () => {
  let instances: Instance[] = [];

  afterEach(() => {
    for (const i of instances) i.server.forceShutdown();
    instances = [];
  });

  it("turns a list into a static ipv4: target and a dns: name into a resolved one, both balanced", () => {
    expect(grpcTarget("127.0.0.1:1")).to.deep.equal({ target: "127.0.0.1:1", balanced: false });
    expect(grpcTarget("10.0.0.1:1,10.0.0.2:2")).to.deep.equal({ target: "ipv4:10.0.0.1:1,10.0.0.2:2", balanced: true });
    expect(grpcTarget("[::1]:1,[::1]:2")).to.deep.equal({ target: "ipv6:[::1]:1,[::1]:2", balanced: true });
    expect(grpcTarget("dns:payment:50051")).to.deep.equal({ target: "dns:payment:50051", balanced: true });
  });

  it("spreads calls round-robin over every instance, and over the rest once one is gone", async () => {
    instances = await Promise.all([startInstance(), startInstance(), startInstance()]);
    const handle = createGrpcClient(PaymentService, instances.map((i) => `127.0.0.1:${i.port}`).join(","));
    try {
      // The first calls go wherever a connection is ready first; then the rotation settles.
      for (let i = 0; i < 30; i++) await handle.client.getBalance({ salerId: "a" }, { timeoutMs: 5000 });
      for (const i of instances) i.calls = 0;
      for (let i = 0; i < 90; i++) await handle.client.getBalance({ salerId: "a" }, { timeoutMs: 5000 });
      expect(instances.map((i) => i.calls)).to.deep.equal([30, 30, 30]);

      const gone = instances[1]!;
      gone.server.forceShutdown();
      const before = gone.calls;
      const failed: Code[] = [];
      for (let i = 0; i < 90; i++) {
        try {
          await handle.client.getBalance({ salerId: "a" }, { timeoutMs: 5000 });
        } catch (err) {
          failed.push(ConnectError.from(err).code);
        }
      }
      expect(gone.calls, "calls to the instance that is gone").to.equal(before);
      // A call sent before the client read the server's GOAWAY fails as UNAVAILABLE, an
      // unknown outcome to its caller; every later call goes to the others.
      expect(failed.length, "calls that failed").to.be.at.most(1);
      for (const code of failed) expect(Code[code]).to.equal("Unavailable");
      expect(instances[0]!.calls + instances[2]!.calls).to.equal(60 + 90 - failed.length);
      expect(Math.abs(instances[0]!.calls - instances[2]!.calls)).to.be.at.most(2);
    } finally {
      handle.close();
    }
  });
});
