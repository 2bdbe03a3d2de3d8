/**
 * gRPC over @grpc/grpc-js for services described by protobuf-es descriptors. grpc-js accepts any
 * (de)serializer, so the service definition is built at run time from the descriptors and the
 * handlers are the same `ServiceImpl` objects that connect-node serves as JSON.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, ScalarType, toBinary, type DescField, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createContextValues, type Client, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { assignRequestId, PEER_KEY } from "./callPolicy.js";
import { toClientError } from "../errors.js";

type AnyImpl = Record<string, (req: unknown, ctx: unknown) => unknown>;

export function grpcPath(service: DescService, method: DescMethod): string {
  return `/${service.typeName}/${method.name}`;
}

/** A request body that is not a valid encoding of the method's input message. */
export class UndecodableRequest {
  constructor(readonly reason: string) {}
}

function wireTypesOf(field: DescField): WireType[] {
  const scalarWire = (t: ScalarType): WireType => {
    switch (t) {
      case ScalarType.STRING:
      case ScalarType.BYTES:
        return WireType.LengthDelimited;
      case ScalarType.DOUBLE:
      case ScalarType.FIXED64:
      case ScalarType.SFIXED64:
        return WireType.Bit64;
      case ScalarType.FLOAT:
      case ScalarType.FIXED32:
      case ScalarType.SFIXED32:
        return WireType.Bit32;
      default:
        return WireType.Varint;
    }
  };
  switch (field.fieldKind) {
    case "scalar":
      return [scalarWire(field.scalar)];
    case "enum":
      return [WireType.Varint];
    case "message":
    case "map":
      return [WireType.LengthDelimited];
    case "list":
      if (field.listKind === "message") return [WireType.LengthDelimited];
      // Packed or one element at a time.
      return [WireType.LengthDelimited, field.listKind === "enum" ? WireType.Varint : scalarWire(field.scalar)];
  }
}

/**
 * protobuf-es reads a known field by its declared type whatever wire type it arrives with, so
 * a field sent with the wrong wire type could decode into a value nobody sent. Refuse it instead.
 */
function checkWireTypes(schema: DescMessage, bytes: Uint8Array, depth = 0): void {
  if (depth > 32) throw new Error("messages nested too deeply");
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    const field = schema.fields.find((f) => f.number === no);
    if (!field) {
      reader.skip(wireType, no);
      continue;
    }
    if (!wireTypesOf(field).includes(wireType)) throw new Error(`field ${field.name} (${no}) arrived with wire type ${wireType}`);
    const nested = field.fieldKind === "message" ? field.message : field.fieldKind === "list" && field.listKind === "message" ? field.message : undefined;
    if (nested) checkWireTypes(nested, reader.bytes(), depth + 1);
    else reader.skip(wireType, no);
  }
}

/** The decoded request, or why it cannot be decoded (answered as INVALID_ARGUMENT). */
export function decodeRequest(schema: DescMessage, bytes: Uint8Array): unknown {
  try {
    checkWireTypes(schema, bytes);
    return fromBinary(schema, bytes);
  } catch (err) {
    return new UndecodableRequest(`cannot decode ${schema.typeName}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Response headers and trailers as gRPC metadata (protocol headers left out). */
function toMetadata(...sources: (Headers | undefined)[]): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const headers of sources) {
    headers?.forEach((value, key) => {
      if (key === "content-type" || key === "te" || key.startsWith("grpc-") || key.endsWith("-bin")) return;
      md.set(key, value);
    });
  }
  return md;
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
      requestDeserialize: (b: Buffer) => decodeRequest(method.input, b),
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

function grpcError(err: unknown, ctx: HandlerContext): Partial<grpc.StatusObject> {
  const e = toClientError(err);
  return { code: e.code as number as grpc.status, details: e.rawMessage, metadata: toMetadata(ctx.responseHeader, ctx.responseTrailer, e.metadata) };
}

/** The request, or INVALID_ARGUMENT when its bytes did not decode. */
function requestOf(call: { request: unknown }): unknown {
  if (call.request instanceof UndecodableRequest) throw new ConnectError(call.request.reason, Code.InvalidArgument);
  return call.request;
}

/**
 * The reason a call's signal carries once the call is over. One shared error: aborting without a
 * reason would build a DOMException, stack trace included, for every call.
 */
const CALL_FINISHED = new ConnectError("the call has finished", Code.Canceled);

interface CallContext extends HandlerContext {
  abort(reason: unknown): void;
}

/**
 * The handler context of one gRPC call, as connect's createHandlerContext makes it: a signal that
 * aborts at the caller's deadline, on server shutdown, on cancellation and once the call is over.
 * Built from one AbortController, a timer only when the caller set a deadline and one listener on
 * the shutdown signal; createHandlerContext links three controllers per call, which showed as a
 * large share of a trivial call's server time.
 */
function callContext(
  service: DescService,
  method: DescMethod,
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>,
  shutdownSignal: AbortSignal | undefined,
): CallContext {
  const controller = new AbortController();
  const timeoutMs = remainingMs(call);
  const deadlineAt = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  let timer: NodeJS.Timeout | undefined;
  const onShutdown = () => abort(shutdownSignal?.reason);
  const abort = (reason: unknown) => {
    if (controller.signal.aborted) return;
    if (timer !== undefined) clearTimeout(timer);
    shutdownSignal?.removeEventListener("abort", onShutdown);
    controller.abort(reason);
  };
  const timedOut = () => abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
  if (timeoutMs !== undefined) {
    if (timeoutMs <= 0) timedOut();
    else timer = setTimeout(timedOut, timeoutMs);
  }
  if (shutdownSignal?.aborted) onShutdown();
  else shutdownSignal?.addEventListener("abort", onShutdown);
  return {
    service,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: grpcPath(service, method),
    signal: controller.signal,
    timeoutMs: () => (deadlineAt === undefined ? undefined : deadlineAt - Date.now()),
    requestHeader: metadataHeaders(call.metadata),
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    values: createContextValues().set(PEER_KEY, call.getPeer()),
    abort,
  };
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
      const ctx = callContext(service, method, call, options.shutdownSignal);
      // grpc-js reports "cancelled" when the stream closes, also after the answer went out; by
      // then the context is finished (its signal aborted) and there is nothing to cancel.
      call.on("cancelled", () => {
        if (!ctx.signal.aborted) ctx.abort(new ConnectError("cancelled by the client", Code.Canceled));
      });
      assignRequestId(ctx);
      return ctx;
    };
    const report = (err: unknown) => {
      if (!(err instanceof ConnectError)) options.onError?.(err, method.name);
    };
    if (method.methodKind === "unary") {
      handlers[method.localName] = ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const ctx = context(call);
        Promise.resolve()
          .then(() => fn.call(impl, requestOf(call), ctx))
          .then(
            (res) => {
              ctx.abort(CALL_FINISHED);
              call.sendMetadata(toMetadata(ctx.responseHeader));
              callback(null, create(method.output, res as never), toMetadata(ctx.responseTrailer));
            },
            (err: unknown) => {
              ctx.abort(CALL_FINISHED);
              report(err);
              callback(grpcError(err, ctx), null);
            },
          );
      }) as grpc.handleUnaryCall<unknown, unknown>;
    } else if (method.methodKind === "server_streaming") {
      handlers[method.localName] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        const ctx = context(call);
        (async () => {
          const stream = fn.call(impl, requestOf(call), ctx) as AsyncIterable<unknown>;
          let headersSent = false;
          for await (const item of stream) {
            if (call.cancelled) return;
            if (!headersSent) {
              call.sendMetadata(toMetadata(ctx.responseHeader));
              headersSent = true;
            }
            if (!call.write(create(method.output, item as never))) {
              // Whichever comes first; the other listener goes too, or a long export would
              // pile up one per pause.
              await new Promise<void>((resolve) => {
                const go = () => {
                  call.off("drain", go);
                  call.off("cancelled", go);
                  resolve();
                };
                call.on("drain", go);
                call.on("cancelled", go);
              });
            }
          }
          if (!headersSent) call.sendMetadata(toMetadata(ctx.responseHeader));
          call.end(toMetadata(ctx.responseTrailer));
        })().then(
          () => ctx.abort(CALL_FINISHED),
          (err: unknown) => {
            ctx.abort(CALL_FINISHED);
            report(err);
            call.emit("error", grpcError(err, ctx));
          },
        );
      }) as grpc.handleServerStreamingCall<unknown, unknown>;
    } else {
      throw new Error(`${service.typeName}.${method.name}: only unary and server-streaming methods are served`);
    }
  }
  server.addService(grpcServiceDefinition(service), handlers);
}

function headersOf(metadata: grpc.Metadata | undefined): Headers {
  return metadata ? metadataHeaders(metadata) : new Headers();
}

/** The status as a ConnectError whose metadata holds the trailers (x-request-id among them). */
function connectErrorOf(err: grpc.ServiceError, upstream?: UpstreamName): ConnectError {
  const details = err.details || err.message;
  if (upstream && err.code === grpc.status.UNAVAILABLE) {
    // A service passing this on to its own caller names the service it could not reach, instead
    // of grpc-js's "No connection established" as if the caller's own call had failed.
    const reason = details.replace(/\s*(Last error: )?/, " ").replace(/\s*Resolution note:\s*$/, "").trim();
    return new ConnectError(`upstream ${upstream.name} service at ${upstream.address} is unreachable (${reason})`, Code.Unavailable, headersOf(err.metadata));
  }
  return new ConnectError(details, err.code as number as Code, headersOf(err.metadata));
}

interface UpstreamName {
  name: string;
  address: string;
}

/** Headers added to every call of a client, computed from the method and the request message. */
export type CallHeaders = (method: DescMethod, request: unknown) => Record<string, string> | undefined;

export interface GrpcClientHandle<S extends DescService> {
  client: Client<S>;
  close(): void;
}

/**
 * The grpc-js target of an address (see readGrpcAddress) and whether it names several instances:
 * a list "ip:port,ip:port" becomes an ipv4: (or ipv6:) target of static addresses; "dns:..." is
 * resolved by grpc-js, every address of the name.
 */
export function grpcTarget(address: string): { target: string; balanced: boolean } {
  if (address.startsWith("dns:")) return { target: address, balanced: true };
  if (!address.includes(",")) return { target: address, balanced: false };
  const entries = address.split(",").map((e) => e.trim());
  const v6 = entries.every((e) => e.startsWith("["));
  return { target: `${v6 ? "ipv6" : "ipv4"}:${entries.join(",")}`, balanced: true };
}

/**
 * round_robin over every READY connection. A killed or stopping instance drops out of the
 * rotation as soon as its connection closes or it sends GOAWAY (a server shutting down also
 * reports NOT_SERVING on grpc.health.v1), and is reconnected in the background.
 *
 * An instance that is up but fails its calls (one that cannot reach its database: a killed
 * Galera node) is ejected from the rotation by outlier detection once at least half of its last
 * second's calls (10 or more) failed, for 5 s and longer each time it is ejected again; never
 * more than half of the instances at once.
 *
 * A call answered UNAVAILABLE is sent again, up to 3 more times with a short back-off; round_robin
 * gives each attempt the next instance. Every call of the services is safe to repeat: a write
 * carries its request_id, and an instance that already recorded it answers what it recorded.
 * Only when every attempt met UNAVAILABLE does the caller see it (an unknown outcome).
 */
function balancedServiceConfig(serviceName: string): string {
  const seconds = (n: number) => ({ seconds: n, nanos: 0 });
  return JSON.stringify({
    loadBalancingConfig: [
      {
        outlier_detection: {
          interval: seconds(1),
          base_ejection_time: seconds(5),
          max_ejection_time: seconds(60),
          max_ejection_percent: 50,
          failure_percentage_ejection: { threshold: 50, enforcement_percentage: 100, minimum_hosts: 2, request_volume: 10 },
          child_policy: [{ round_robin: {} }],
        },
      },
    ],
    methodConfig: [
      {
        name: [{ service: serviceName }],
        retryPolicy: { maxAttempts: 4, initialBackoff: "0.05s", maxBackoff: "0.5s", backoffMultiplier: 2, retryableStatusCodes: ["UNAVAILABLE"] },
      },
    ],
  });
}

/**
 * A promise client with the same shape as connect-es's `Client<S>`, over a grpc-js channel.
 * Errors arrive as ConnectError with the gRPC status code. An address naming several instances
 * (a list, or a DNS name) is balanced round-robin over them.
 */
export function createGrpcClient<S extends DescService>(
  service: S,
  address: string,
  options: {
    credentials?: grpc.ChannelCredentials;
    channelOptions?: grpc.ChannelOptions;
    callHeaders?: CallHeaders;
    /** grpc-js interceptors of every call (metrics.ts counts the calls with one). */
    interceptors?: grpc.Interceptor[];
    /** The called service's name, for UNAVAILABLE errors that name it ("payment", "merchant"). */
    upstream?: string;
  } = {},
): GrpcClientHandle<S> {
  const { target, balanced } = grpcTarget(address);
  const channelOptions = balanced ? { "grpc.service_config": balancedServiceConfig(service.typeName), ...options.channelOptions } : options.channelOptions;
  const raw = new grpc.Client(target, options.credentials ?? grpc.credentials.createInsecure(), {
    ...channelOptions,
    ...(options.interceptors ? { interceptors: options.interceptors } : {}),
  });
  const client: Record<string, unknown> = {};
  const upstream = options.upstream ? { name: options.upstream, address } : undefined;
  for (const method of service.methods) {
    const path = grpcPath(service, method);
    const serialize = (m: unknown) => Buffer.from(toBinary(method.input, m as never));
    const deserialize = (b: Buffer) => fromBinary(method.output, b);
    const callOptions = (opts?: { timeoutMs?: number }): grpc.CallOptions =>
      opts?.timeoutMs ? { deadline: Date.now() + opts.timeoutMs } : {};
    const metadata = (message: unknown, opts?: { headers?: ConstructorParameters<typeof Headers>[0] }) => {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(options.callHeaders?.(method, message) ?? {})) md.set(k, v);
      if (opts?.headers) new Headers(opts.headers).forEach((v, k) => md.set(k, v));
      return md;
    };
    type Opts = {
      timeoutMs?: number;
      signal?: AbortSignal;
      headers?: ConstructorParameters<typeof Headers>[0];
      onHeader?: (headers: Headers) => void;
    };
    if (method.methodKind === "unary") {
      client[method.localName] = (req: unknown, opts?: Opts) =>
        new Promise((resolve, reject) => {
          const message = create(method.input, req as never);
          const call = raw.makeUnaryRequest(path, serialize, deserialize, message, metadata(message, opts), callOptions(opts), (err, res) => {
            if (err) reject(connectErrorOf(err, upstream));
            else resolve(res);
          });
          if (opts?.onHeader) call.on("metadata", (md: grpc.Metadata) => opts.onHeader?.(metadataHeaders(md)));
          opts?.signal?.addEventListener("abort", () => call.cancel(), { once: true });
        });
    } else if (method.methodKind === "server_streaming") {
      client[method.localName] = (req: unknown, opts?: Opts) => {
        const message = create(method.input, req as never);
        const call = raw.makeServerStreamRequest(path, serialize, deserialize, message, metadata(message, opts), callOptions(opts));
        if (opts?.onHeader) call.on("metadata", (md: grpc.Metadata) => opts.onHeader?.(metadataHeaders(md)));
        opts?.signal?.addEventListener("abort", () => call.cancel(), { once: true });
        return (async function* () {
          try {
            for await (const item of call) yield item;
          } catch (err) {
            throw connectErrorOf(err as grpc.ServiceError, upstream);
          }
        })();
      };
    }
  }
  return { client: client as unknown as Client<S>, close: () => raw.close() };
}
