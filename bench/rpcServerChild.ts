/**
 * A gRPC server for the RPC-overhead benchmark, in a process of its own:
 *   ours — services/shared/rpc/server.ts serve() with the payment contract, whose QueryOrder answers
 *          "not found" at once (every other method is unimplemented): grpc-js with the
 *          descriptor-built definition, the call policy, handler context and error mapping;
 *   metrics — ours, with the service's Prometheus metrics counting every call (metrics.ts);
 *   bare — a plain @grpc/grpc-js server with a hand-written definition of the same method and the
 *          same protobuf-es codec, whose handler answers the same message through the callback.
 * Prints the gRPC port on stdout, then serves until SIGTERM.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { pino } from "pino";
import { PaymentService, QueryOrderRequestSchema, QueryOrderResponseSchema } from "../gen/payment/v1/payment_pb.js";
import { bind, serve } from "../services/shared/rpc/server.js";
import { ServiceMetrics } from "../services/shared/observability/metrics.js";

const mode = process.argv[2];
let port: number;
let stop: () => Promise<void>;

if (mode === "ours" || mode === "metrics") {
  const impl: Record<string, unknown> = {};
  for (const m of PaymentService.methods) {
    impl[m.localName] =
      m.methodKind === "unary"
        ? async () => {
            throw new ConnectError("not served here", Code.Unimplemented);
          }
        : async function* () {
            throw new ConnectError("not served here", Code.Unimplemented);
          };
  }
  impl.queryOrder = async () => ({ found: false });
  const server = await serve({
    name: "rpc-bench",
    listen: { host: "127.0.0.1", grpcPort: 0, httpPort: 0 },
    services: [bind(PaymentService, impl as unknown as ServiceImpl<typeof PaymentService>)],
    logger: pino({ level: "silent" }),
    ...(mode === "metrics" ? { metrics: new ServiceMetrics("rpc-bench") } : {}),
  });
  port = server.grpcPort;
  stop = () => server.close(1000);
} else if (mode === "bare") {
  const server = new grpc.Server();
  const answer = create(QueryOrderResponseSchema, { found: false });
  server.addService(
    {
      QueryOrder: {
        path: "/payment.v1.PaymentService/QueryOrder",
        requestStream: false,
        responseStream: false,
        requestSerialize: (m: unknown) => Buffer.from(toBinary(QueryOrderRequestSchema, m as never)),
        requestDeserialize: (b: Buffer) => fromBinary(QueryOrderRequestSchema, b),
        responseSerialize: (m: unknown) => Buffer.from(toBinary(QueryOrderResponseSchema, m as never)),
        responseDeserialize: (b: Buffer) => fromBinary(QueryOrderResponseSchema, b),
      },
    },
    {
      QueryOrder: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => callback(null, answer),
    },
  );
  port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  stop = () => new Promise((resolve) => server.tryShutdown(() => resolve()));
} else {
  throw new Error(`usage: rpcServerChild.ts ours|bare`);
}

process.stdout.write(`${port}\n`);
process.once("SIGTERM", () => void stop().then(() => process.exit(0)));
