/**
 * The gRPC server side over @grpc/grpc-js for services described by protobuf-es descriptors.
 * grpc-js accepts any (de)serializer, so the service definition is built at run time from the
 * descriptors (requests decoded by decode.ts) and the handlers are the same `ServiceImpl` objects
 * that connect-node serves as JSON. The client side is grpcClient.ts.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextKey, type ContextValues, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { PEER_KEY, REQUEST_ID_HEADER, requestIdFrom, type CallStop } from "./callPolicy.js";
import { decodeRequest, UndecodableRequest } from "./decode.js";
import { codecOf } from "./codecs.js";
import { toClientError } from "../errors.js";

type AnyImpl = Record<string, (req: unknown, ctx: unknown) => unknown>;

export function grpcPath(service: DescService, method: DescMethod): string {
  return `/${service.typeName}/${method.name}`;
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

/** The encoded bytes as a Buffer over the same memory (Buffer.from(bytes) would copy them). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The grpc-js service definition of a protobuf-es service. */
export function grpcServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    def[method.localName] = {
      path: grpcPath(service, method),
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (m: unknown) => asBuffer(toBinary(method.input, m as never)),
      requestDeserialize: (b: Buffer) => decodeRequest(method.input, b),
      responseSerialize: codecOf(method.output)?.encode ?? ((m: unknown) => asBuffer(toBinary(method.output, m as never))),
      responseDeserialize: codecOf(method.output)?.decode ?? ((b: Buffer) => fromBinary(method.output, b)),
      originalName: method.localName,
    };
  }
  return def;
}

/** gRPC metadata as Headers (binary values left out). */
export function metadataHeaders(metadata: grpc.Metadata): Headers {
  const headers = new Headers();
  for (const [k, v] of Object.entries(metadata.getMap())) {
    if (typeof v === "string") headers.append(k, v);
  }
  return headers;
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

type ServerCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

/**
 * Context values of one gRPC call. The peer address (PEER_KEY) is read from the call only when
 * asked for.
 */
class CallValues implements ContextValues {
  [key: symbol]: unknown;

  constructor(private readonly call: ServerCall) {}

  get<T>(key: ContextKey<T>): T {
    if (key.id in this) return this[key.id] as T;
    if (key === (PEER_KEY as ContextKey<unknown>)) return (this[key.id] = this.call.getPeer()) as T;
    return key.defaultValue;
  }

  set<T>(key: ContextKey<T>, value: T): this {
    this[key.id] = value;
    return this;
  }

  delete(key: ContextKey<unknown>): this {
    delete this[key.id];
    return this;
  }
}

/**
 * The handler context of one gRPC call, as connect's createHandlerContext makes it: a signal that
 * aborts at the caller's deadline, on server shutdown, on cancellation and once the call is over;
 * the request id (the caller's x-request-id when well-formed, else a new one) already in the
 * response header. What a handler may never look at costs nothing until it does: the signal
 * (with its deadline timer and its shutdown and cancellation listeners), the request headers,
 * the response header and trailers and the peer address are made on first use, each as it would have been
 * at the start of the call (a signal first asked for after the deadline, a shutdown or a
 * cancellation is already aborted with that reason; one asked for after the call ended carries
 * CALL_FINISHED).
 */
class GrpcCallContext implements HandlerContext {
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly values: CallValues;
  /** The call's request id (callPolicy.ts assignRequestId reads it here). */
  readonly assignedRequestId: string;
  private responseHeaders: Headers | undefined;
  private controller: AbortController | undefined;
  /** Why the call ended (set once), whether or not the signal exists yet. */
  private reason: unknown;
  private ended = false;
  private timer: NodeJS.Timeout | undefined;
  /** The signal's shutdown and cancellation listeners, once the signal is made. */
  private listeners: { shutdown: () => void; cancelled: () => void } | undefined;
  private header: Headers | undefined;
  private trailer: Headers | undefined;
  private readonly deadlineAt: number | undefined;

  constructor(
    readonly service: DescService,
    readonly method: DescMethod,
    readonly url: string,
    private readonly call: ServerCall,
    private readonly shutdownSignal: AbortSignal | undefined,
  ) {
    const deadline = call.getDeadline();
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    this.deadlineAt = Number.isFinite(at) ? at : undefined;
    this.values = new CallValues(call);
    const [callers] = call.metadata.get(REQUEST_ID_HEADER);
    this.assignedRequestId = requestIdFrom(typeof callers === "string" ? callers : undefined);
  }

  /** The response header, the request id in it, made when first asked for. */
  get responseHeader(): Headers {
    if (this.responseHeaders === undefined) {
      this.responseHeaders = new Headers();
      this.responseHeaders.set(REQUEST_ID_HEADER, this.assignedRequestId);
    }
    return this.responseHeaders;
  }

  /** The response header as gRPC metadata: only the request id unless a handler added to it. */
  headerMetadata(): grpc.Metadata {
    if (this.responseHeaders !== undefined) return toMetadata(this.responseHeaders);
    const md = new grpc.Metadata();
    md.set(REQUEST_ID_HEADER, this.assignedRequestId);
    return md;
  }

  timeoutMs(): number | undefined {
    return this.deadlineAt === undefined ? undefined : this.deadlineAt - Date.now();
  }

  get requestHeader(): Headers {
    return (this.header ??= metadataHeaders(this.call.metadata));
  }

  get responseTrailer(): Headers {
    return (this.trailer ??= new Headers());
  }

  /** The trailers to send: none unless the handler set some. */
  trailerMetadata(): grpc.Metadata | undefined {
    return this.trailer === undefined ? undefined : toMetadata(this.trailer);
  }

  get signal(): AbortSignal {
    if (this.controller) return this.controller.signal;
    const controller = (this.controller = new AbortController());
    if (this.ended) {
      controller.abort(this.reason);
      return controller.signal;
    }
    if (this.shutdownSignal?.aborted) this.abort(this.shutdownSignal.reason);
    else if (this.call.cancelled) this.abort(new ConnectError("cancelled by the client", Code.Canceled));
    else if (this.deadlineAt !== undefined && this.deadlineAt <= Date.now()) this.timedOut();
    else {
      // Made with the signal, which most calls never ask for.
      const listeners = (this.listeners = {
        shutdown: () => this.abort(this.shutdownSignal?.reason),
        cancelled: () => this.abort(new ConnectError("cancelled by the client", Code.Canceled)),
      });
      if (this.deadlineAt !== undefined) this.timer = setTimeout(() => this.timedOut(), this.deadlineAt - Date.now());
      this.shutdownSignal?.addEventListener("abort", listeners.shutdown);
      // grpc-js reports "cancelled" when the stream closes, also after the answer went out; by
      // then the context is finished (its signal aborted) and there is nothing to cancel.
      this.call.on("cancelled", listeners.cancelled);
    }
    return controller.signal;
  }

  /**
   * Whether the signal is aborted, or would be if it had been made: for handlers that only ask
   * (callStop), without the signal's timer and listeners.
   */
  get aborted(): boolean {
    if (this.controller) return this.controller.signal.aborted;
    return (
      this.ended ||
      (this.deadlineAt !== undefined && this.deadlineAt <= Date.now()) ||
      this.call.cancelled ||
      this.shutdownSignal?.aborted === true
    );
  }

  /** Ends the call's context: its signal aborts with `reason` (the first reason wins). */
  abort(reason: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.reason = reason;
    const controller = this.controller;
    if (controller === undefined) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.listeners !== undefined) {
      this.shutdownSignal?.removeEventListener("abort", this.listeners.shutdown);
      this.call.off("cancelled", this.listeners.cancelled);
    }
    controller.abort(reason);
  }

  private timedOut(): void {
    this.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
  }
}

/**
 * How a handler that only needs to ask whether its call has stopped should watch it: on the gRPC
 * port the context answers by looking at the deadline, the call and the shutdown signal when
 * asked; elsewhere the handler context's signal.
 */
export function callStop(ctx: HandlerContext): CallStop {
  return ctx instanceof GrpcCallContext ? ctx : ctx.signal;
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
    const url = grpcPath(service, method);
    const context = (call: ServerCall) => new GrpcCallContext(service, method, url, call, options.shutdownSignal);
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
              call.sendMetadata(ctx.headerMetadata());
              callback(null, create(method.output, res as never), ctx.trailerMetadata());
            },
            (err: unknown) => {
              ctx.abort(CALL_FINISHED);
              report(err);
              callback(grpcError(err, ctx), null);
            },
          );
      }) as grpc.handleUnaryCall<unknown, unknown>;
    } else if (method.methodKind === "server_streaming") {
      // A message with a codec of its own is written from what the handler gives (its encode
      // takes that as create() does), without building the message first.
      const toMessage = codecOf(method.output) ? (item: unknown) => item : (item: unknown) => create(method.output, item as never);
      handlers[method.localName] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        const ctx = context(call);
        (async () => {
          const stream = fn.call(impl, requestOf(call), ctx) as AsyncIterable<unknown>;
          let headersSent = false;
          for await (const item of stream) {
            if (call.cancelled) return;
            if (!headersSent) {
              call.sendMetadata(ctx.headerMetadata());
              headersSent = true;
            }
            if (!call.write(toMessage(item))) {
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
          if (!headersSent) call.sendMetadata(ctx.headerMetadata());
          call.end(ctx.trailerMetadata());
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
