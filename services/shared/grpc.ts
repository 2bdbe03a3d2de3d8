/**
 * gRPC over @grpc/grpc-js for services described by protobuf-es descriptors. grpc-js accepts any
 * (de)serializer, so the service definition is built at run time from the descriptors and the
 * handlers are the same `ServiceImpl` objects that connect-node serves as JSON.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createHandlerContext, type Client, type ServiceImpl } from "@connectrpc/connect";
import { toClientError } from "./errors.js";

type AnyImpl = Record<string, (req: unknown, ctx: unknown) => unknown>;

export function grpcPath(service: DescService, method: DescMethod): string {
  return `/${service.typeName}/${method.name}`;
}

/** The grpc-js service definition of a protobuf-es service. */
export function grpcServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    def[method.localName] = {
      path: grpcPath(service, method),
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (m: unknown) => Buffer.from(toBinary(method.input, m as never)),
      requestDeserialize: (b: Buffer) => fromBinary(method.input, b),
      responseSerialize: (m: unknown) => Buffer.from(toBinary(method.output, m as never)),
      responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
      originalName: method.localName,
    };
  }
  return def;
}

function metadataHeaders(metadata: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [k, v] of Object.entries(metadata.getMap())) {
    if (typeof v === "string") headers.append(k, v);
  }
  return headers;
}

function remainingMs(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): number | undefined {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  if (!Number.isFinite(at)) return undefined;
  return Math.max(0, at - Date.now());
}

export type ErrorObserver = (err: unknown, method: string) => void;

function grpcError(err: unknown): Partial<grpc.StatusObject> {
  const e = toClientError(err);
  return { code: e.code as number as grpc.status, details: e.rawMessage };
}

/** Registers a service implementation on a grpc-js server. */
export function addGrpcService<S extends DescService>(
  server: grpc.Server,
  service: S,
  impl: ServiceImpl<S>,
  options: { shutdownSignal?: AbortSignal; onError?: ErrorObserver } = {},
): void {
  const handlers: grpc.UntypedServiceImplementation = {};
  const methods = impl as unknown as AnyImpl;
  for (const method of service.methods) {
    const fn = methods[method.localName];
    if (!fn) throw new Error(`${service.typeName} has no handler for ${method.name}`);
    const context = (call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>) => {
      const requestAbort = new AbortController();
      call.on("cancelled", () => requestAbort.abort(new ConnectError("cancelled by the client", Code.Canceled)));
      const timeoutMs = remainingMs(call);
      return createHandlerContext({
        service,
        method,
        protocolName: "grpc",
        requestMethod: "POST",
        url: grpcPath(service, method),
        requestHeader: metadataHeaders(call.metadata),
        requestSignal: requestAbort.signal,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
        ...(options.shutdownSignal ? { shutdownSignal: options.shutdownSignal } : {}),
      });
    };
    const report = (err: unknown) => {
      if (!(err instanceof ConnectError)) options.onError?.(err, method.name);
    };
    if (method.methodKind === "unary") {
      handlers[method.localName] = ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const ctx = context(call);
        Promise.resolve()
          .then(() => fn.call(impl, call.request, ctx))
          .then(
            (res) => {
              ctx.abort();
              callback(null, create(method.output, res as never));
            },
            (err: unknown) => {
              ctx.abort();
              report(err);
              callback(grpcError(err), null);
            },
          );
      }) as grpc.handleUnaryCall<unknown, unknown>;
    } else if (method.methodKind === "server_streaming") {
      handlers[method.localName] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        const ctx = context(call);
        (async () => {
          const stream = fn.call(impl, call.request, ctx) as AsyncIterable<unknown>;
          for await (const item of stream) {
            if (call.cancelled) return;
            if (!call.write(create(method.output, item as never))) {
              await new Promise<void>((resolve) => {
                call.once("drain", resolve);
                call.once("cancelled", resolve);
              });
            }
          }
          call.end();
        })().then(
          () => ctx.abort(),
          (err: unknown) => {
            ctx.abort();
            report(err);
            call.emit("error", grpcError(err));
          },
        );
      }) as grpc.handleServerStreamingCall<unknown, unknown>;
    } else {
      throw new Error(`${service.typeName}.${method.name}: only unary and server-streaming methods are served`);
    }
  }
  server.addService(grpcServiceDefinition(service), handlers);
}

function connectErrorOf(err: grpc.ServiceError): ConnectError {
  return new ConnectError(err.details || err.message, err.code as number as Code);
}

export interface GrpcClientHandle<S extends DescService> {
  client: Client<S>;
  close(): void;
}

/**
 * A promise client with the same shape as connect-es's `Client<S>`, over a grpc-js channel.
 * Errors arrive as ConnectError with the gRPC status code.
 */
export function createGrpcClient<S extends DescService>(
  service: S,
  address: string,
  options: { credentials?: grpc.ChannelCredentials; channelOptions?: grpc.ChannelOptions } = {},
): GrpcClientHandle<S> {
  const raw = new grpc.Client(address, options.credentials ?? grpc.credentials.createInsecure(), options.channelOptions);
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    const path = grpcPath(service, method);
    const serialize = (m: unknown) => Buffer.from(toBinary(method.input, create(method.input, m as never)));
    const deserialize = (b: Buffer) => fromBinary(method.output, b);
    const callOptions = (opts?: { timeoutMs?: number }): grpc.CallOptions =>
      opts?.timeoutMs ? { deadline: Date.now() + opts.timeoutMs } : {};
    const metadata = (opts?: { headers?: ConstructorParameters<typeof Headers>[0] }) => {
      const md = new grpc.Metadata();
      if (opts?.headers) new Headers(opts.headers).forEach((v, k) => md.set(k, v));
      return md;
    };
    if (method.methodKind === "unary") {
      client[method.localName] = (req: unknown, opts?: { timeoutMs?: number; signal?: AbortSignal; headers?: ConstructorParameters<typeof Headers>[0] }) =>
        new Promise((resolve, reject) => {
          const call = raw.makeUnaryRequest(path, serialize, deserialize, req, metadata(opts), callOptions(opts), (err, res) => {
            if (err) reject(connectErrorOf(err));
            else resolve(res);
          });
          opts?.signal?.addEventListener("abort", () => call.cancel(), { once: true });
        });
    } else if (method.methodKind === "server_streaming") {
      client[method.localName] = (req: unknown, opts?: { timeoutMs?: number; signal?: AbortSignal; headers?: ConstructorParameters<typeof Headers>[0] }) => {
        const call = raw.makeServerStreamRequest(path, serialize, deserialize, req, metadata(opts), callOptions(opts));
        opts?.signal?.addEventListener("abort", () => call.cancel(), { once: true });
        return (async function* () {
          try {
            for await (const item of call) yield item;
          } catch (err) {
            throw connectErrorOf(err as grpc.ServiceError);
          }
        })();
      };
    }
  }
  return { client: client as unknown as Client<S>, close: () => raw.close() };
}
