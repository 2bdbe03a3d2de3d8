/**
 * Serves one or more protobuf-es services twice from the same handler objects: gRPC on an
 * HTTP/2 port with @grpc/grpc-js (plus the standard grpc.health.v1 service), and the Connect
 * protocol (JSON and binary, plus gRPC-Web) on an HTTP/1.1 port with connect-node, whose JSON
 * uses the contracts' snake_case field names and whose request messages are first checked to
 * decode as strictly as on the gRPC port (gatewayRequests.ts). Both run every call through the
 * same call policy (callPolicy.ts: request id, guard, deadline, errors without internals) and,
 * when configured, TLS (tls.ts).
 */
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import { setMaxListeners } from "node:events";
import * as grpc from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, createContextValues, type ServiceImpl } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { HealthImplementation } from "grpc-health-check";
import { addGrpcService } from "./grpcServer.js";
import type { CallGuard } from "../auth/authentication.js";
import {
  applyCallPolicy,
  DEFAULT_CALL_LIMITS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  PEER_KEY,
  REQUEST_ID_HEADER,
  requestIdFrom,
  type CallLimits,
  type CallObserver,
} from "./callPolicy.js";
import type { ServiceMetrics } from "../observability/metrics.js";
import { callLogObserver, DEFAULT_SERVING, type ServingConfig } from "./serving.js";
import { Readiness, type DependencyCheck } from "../observability/readiness.js";
import { corsRoute, isPreflight, refusePreflight } from "./cors.js";
import { grpcServerCredentials, type ServerTls } from "./tls.js";
import { addReflectionService } from "./reflection.js";
import { checkedGatewayHandler } from "./gatewayRequests.js";
import type { ListenConfig } from "../runtime/config.js";
import { ConfigError } from "../errors.js";
import type { Logger } from "../observability/logger.js";

export interface ServiceBinding {
  service: DescService;
  impl: ServiceImpl<DescService>;
  /** Refuses calls before their handler runs (authentication.ts). */
  guard?: CallGuard | undefined;
  /** Unary methods (local names) that may run long and get the long deadline. */
  longRunning?: readonly string[] | undefined;
}

export function bind<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  options: { guard?: CallGuard | undefined; longRunning?: readonly string[] } = {},
): ServiceBinding {
  return { service, impl: impl as unknown as ServiceImpl<DescService>, ...options };
}

/** Extra plain-HTTP routes; return true when the request was answered. */
export type HttpRoute = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

export interface ServeOptions {
  name: string;
  listen: ListenConfig;
  services: ServiceBinding[];
  logger: Logger;
  httpRoutes?: HttpRoute[];
  /** Largest request message accepted, in bytes. */
  maxMessageBytes?: number;
  /** Deadlines and concurrent streams; DEFAULT_CALL_LIMITS when absent. */
  limits?: CallLimits | undefined;
  /** Certificate and key: gRPC and the HTTP gateway serve TLS. */
  tls?: ServerTls | undefined;
  /** The service's metrics: calls are counted and GET /metrics serves them on the HTTP port. */
  metrics?: ServiceMetrics | undefined;
  /** Call log level and CORS; DEFAULT_SERVING when absent. */
  serving?: ServingConfig | undefined;
  /** What the service needs to do its work: GET /readyz and the gRPC health status follow them. */
  dependencies?: DependencyCheck[] | undefined;
}

export interface RunningServer {
  name: string;
  grpcAddress: string;
  httpUrl: string;
  grpcPort: number;
  httpPort: number;
  /** Stops accepting calls, lets in-flight calls finish (up to graceMs, by default the limits' shutdown grace), then closes. */
  close(graceMs?: number): Promise<void>;
}

/** Snake_case names out, every field emitted, and an unknown field in a request refused. */
export const JSON_OPTIONS = { useProtoFieldName: true, alwaysEmitImplicit: true, ignoreUnknownFields: false } as const;

/**
 * A port that cannot be bound, as a configuration error naming the variable that sets it (start-up
 * then stops with that message and exit code 2); other failures unchanged.
 */
function bindError(err: unknown, variable: string, hostVariable: string, host: string, port: number): unknown {
  const text = `${(err as { code?: string }).code ?? ""} ${err instanceof Error ? err.message : String(err)}`;
  if (/EADDRINUSE/.test(text)) return new ConfigError(variable, `port ${port} on ${host} is already in use; stop what holds it or choose another port`);
  if (/EACCES/.test(text)) return new ConfigError(variable, `port ${port} on ${host} needs privileges this process does not have; choose a port above 1023`);
  if (/EADDRNOTAVAIL/.test(text)) return new ConfigError(hostVariable, `${host} is not an address of this machine`);
  return err;
}

export async function serve(options: ServeOptions): Promise<RunningServer> {
  const { listen, logger } = options;
  const maxMessageBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  const shutdown = new AbortController();
  // Every in-flight call listens on the shutdown signal.
  setMaxListeners(0, shutdown.signal);
  const onError = (err: unknown, method: string) => logger.error({ err, method }, "handler failed");

  const limits = options.limits ?? DEFAULT_CALL_LIMITS;
  const serving = options.serving ?? DEFAULT_SERVING;
  const observers: CallObserver[] = [];
  if (options.metrics) observers.push(options.metrics.calls);
  const callLog = callLogObserver(logger, serving.logCalls);
  if (callLog) observers.push(callLog);
  // Both transports serve the same handlers, each wrapped once in the call policy.
  const bindings = options.services.map((b) => ({ service: b.service, impl: applyCallPolicy(b, logger, limits, observers) }));

  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_concurrent_streams": limits.maxConcurrentStreams,
    // No channelz service is served, so its per-call bookkeeping would be kept for nobody.
    "grpc.enable_channelz": 0,
  });
  const health = new HealthImplementation({ "": "SERVING" });
  for (const { service, impl } of bindings) {
    addGrpcService(grpcServer, service, impl, { shutdownSignal: shutdown.signal, onError });
    health.setStatus(service.typeName, "SERVING");
  }
  health.addToServer(grpcServer);
  const readiness = new Readiness(options.name, options.dependencies ?? [], logger, {
    intervalMs: serving.readinessIntervalMs,
    timeoutMs: 2000,
  });
  let stopped = false;
  readiness.onChange((ready) => {
    if (stopped) return;
    for (const { service } of bindings) health.setStatus(service.typeName, ready ? "SERVING" : "NOT_SERVING");
  });
  addReflectionService(grpcServer, options.services.map((b) => b.service));
  const variable = (kind: "GRPC" | "HTTP") => `${options.name.toUpperCase()}_${kind}_PORT`;
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`${listen.host}:${listen.grpcPort}`, grpcServerCredentials(options.tls), (err, port) =>
      err ? reject(bindError(err, variable("GRPC"), `${options.name.toUpperCase()}_HOST`, listen.host, listen.grpcPort)) : resolve(port),
    ),
  );

  // connect-node's handlers, as connectNodeAdapter would serve them, each behind the check of
  // the request message that makes the gateway refuse what the gRPC port refuses
  // (gatewayRequests.ts).
  const compressions = [compressionGzip, compressionBrotli];
  const router = createConnectRouter({
    jsonOptions: JSON_OPTIONS,
    readMaxBytes: maxMessageBytes,
    acceptCompression: compressions,
    // A caller may ask for a shorter deadline, never a longer one than any call may take.
    maxTimeoutMs: limits.longDeadlineMs,
    shutdownSignal: shutdown.signal,
  });
  for (const { service, impl } of bindings) router.service(service, impl);
  const gatewayHandlers = new Map(
    router.handlers.map((h) => [h.requestPath, checkedGatewayHandler(h, { readMaxBytes: maxMessageBytes, compressions })] as const),
  );
  const connectHandler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const handler = gatewayHandlers.get(req.url?.split("?", 2)[0] ?? "");
    if (!handler) {
      res.writeHead(404);
      res.end();
      return;
    }
    const peer = createContextValues().set(PEER_KEY, `${req.socket.remoteAddress ?? ""}:${req.socket.remotePort ?? ""}`);
    handler(universalRequestFromNodeRequest(req, res, undefined, peer))
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((err: unknown) => {
        if (ConnectError.from(err).code !== Code.Aborted) logger.error({ err, method: handler.method.name }, "gateway handler failed");
      });
  };
  const routes = [corsRoute(serving.corsAllowedOrigins), readiness.route(), ...(options.metrics ? [options.metrics.route()] : []), ...(options.httpRoutes ?? [])];
  // Responses under way. Once draining starts each one ends its keep-alive connection when sent,
  // so an idle client connection does not hold the server open for the whole grace period.
  const inFlight = new Set<http.ServerResponse>();
  let draining = false;
  const endConnectionAfter = (res: http.ServerResponse) => {
    if (!res.headersSent) res.setHeader("connection", "close");
    else res.once("finish", () => httpServer.closeIdleConnections());
  };
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    inFlight.add(res);
    res.once("close", () => inFlight.delete(res));
    if (draining) endConnectionAfter(res);
    if (req.method === "GET" && req.url === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: "SERVING", service: options.name }));
      return;
    }
    for (const route of routes) if (route(req, res)) return;
    if (isPreflight(req)) return refusePreflight(res);
    // Every gateway answer carries a request id, also a refusal before any handler runs
    // (undecodable JSON, an oversized body); the handler's call policy reuses it.
    const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER] as string | undefined);
    req.headers[REQUEST_ID_HEADER] = requestId;
    res.setHeader(REQUEST_ID_HEADER, requestId);
    // connect-node answers a refused streaming request (over the size limit, a broken envelope)
    // with the request body half read and its stream torn down, which leaves the keep-alive
    // connection paused: the next request on it would wait for the keep-alive timeout. Once the
    // answer is out, the rest of the body is read and dropped, as Node does for a body nobody
    // read (the server's requestTimeout bounds how long).
    const socket = req.socket;
    res.once("finish", () => {
      if (req.complete || !req.destroyed) return;
      (req as unknown as { _dump(): void })._dump();
      socket.resume();
    });
    connectHandler(req, res);
  };
  const httpServer = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key }, onRequest) : http.createServer(onRequest);
  httpServer.keepAliveTimeout = 65_000;
  try {
    await new Promise<void>((resolve, reject) => {
      httpServer.once("error", reject);
      httpServer.listen(listen.httpPort, listen.host, () => resolve());
    });
  } catch (err) {
    grpcServer.forceShutdown();
    throw bindError(err, variable("HTTP"), `${options.name.toUpperCase()}_HOST`, listen.host, listen.httpPort);
  }
  const httpPort = (httpServer.address() as AddressInfo).port;
  const hostForUrl = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  readiness.start();

  let closing: Promise<void> | undefined;
  return {
    name: options.name,
    grpcPort,
    httpPort,
    grpcAddress: `${hostForUrl}:${grpcPort}`,
    httpUrl: `${options.tls ? "https" : "http"}://${hostForUrl}:${httpPort}`,
    close(graceMs = limits.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS) {
      closing ??= (async () => {
        stopped = true;
        readiness.stop();
        for (const { service } of options.services) health.setStatus(service.typeName, "NOT_SERVING");
        const grpcDone = new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
        draining = true;
        for (const res of inFlight) endConnectionAfter(res);
        const httpDone = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        httpServer.closeIdleConnections();
        const timer = setTimeout(() => {
          shutdown.abort();
          grpcServer.forceShutdown();
          httpServer.closeAllConnections();
        }, graceMs);
        await Promise.all([grpcDone, httpDone]);
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
