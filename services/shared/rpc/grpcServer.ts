/**
 * The gRPC server side over @grpc/grpc-js for services described by protobuf-es descriptors.
 * grpc-js accepts any (de)serializer, so the service definition is built at run time from the
 * descriptors (requests decoded by decode.ts) and the handlers are the same `ServiceImpl` objects
 * that connect-node serves as JSON. The client side is grpcClient.ts.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { assignRequestId, PEER_KEY } from "./callPolicy.js";
import { decodeRequest, UndecodableRequest } from "./decode.js";
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

/** gRPC metadata as Headers (binary values left out). */
export function metadataHeaders(metadata: grpc.Metadata): Headers {
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
