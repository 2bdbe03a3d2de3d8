/**
 * Serves one or more protobuf-es services twice from the same handler objects: gRPC on an
 * HTTP/2 port with @grpc/grpc-js (plus the standard grpc.health.v1 service), and the Connect
 * protocol (JSON and binary, plus gRPC-Web) on an HTTP/1.1 port with connect-node, whose JSON
 * uses the contracts' snake_case field names.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { setMaxListeners } from "node:events";
import * as grpc from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { HealthImplementation } from "grpc-health-check";
import { addGrpcService } from "./grpc.js";
import { addReflectionService } from "./reflection.js";
import type { ListenConfig } from "./config.js";
import type { Logger } from "./logger.js";

export interface ServiceBinding {
  service: DescService;
  impl: ServiceImpl<DescService>;
}

export function bind<S extends DescService>(service: S, impl: ServiceImpl<S>): ServiceBinding {
  return { service, impl: impl as unknown as ServiceImpl<DescService> };
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
}

export interface RunningServer {
  name: string;
  grpcAddress: string;
  httpUrl: string;
  grpcPort: number;
  httpPort: number;
  /** Stops accepting calls, lets in-flight calls finish (up to graceMs), then closes. */
  close(graceMs?: number): Promise<void>;
}

/** Snake_case names out, every field emitted, and an unknown field in a request refused. */
export const JSON_OPTIONS = { useProtoFieldName: true, alwaysEmitImplicit: true, ignoreUnknownFields: false } as const;

export async function serve(options: ServeOptions): Promise<RunningServer> {
  const { listen, logger } = options;
  const maxMessageBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  const shutdown = new AbortController();
  // Every in-flight call listens on the shutdown signal.
  setMaxListeners(0, shutdown.signal);
  const onError = (err: unknown, method: string) => logger.error({ err, method }, "handler failed");

  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_concurrent_streams": 1000,
  });
  const health = new HealthImplementation({ "": "SERVING" });
  for (const { service, impl } of options.services) {
    addGrpcService(grpcServer, service, impl, { shutdownSignal: shutdown.signal, onError });
    health.setStatus(service.typeName, "SERVING");
  }
  health.addToServer(grpcServer);
  addReflectionService(grpcServer, options.services.map((b) => b.service));
  const grpcPort = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`${listen.host}:${listen.grpcPort}`, grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    ),
  );

  const connectHandler = connectNodeAdapter({
    routes: (router: ConnectRouter) => {
      for (const { service, impl } of options.services) router.service(service, impl);
    },
    jsonOptions: JSON_OPTIONS,
    readMaxBytes: maxMessageBytes,
    shutdownSignal: shutdown.signal,
  });
  const routes = options.httpRoutes ?? [];
  // Responses under way. Once draining starts each one ends its keep-alive connection when sent,
  // so an idle client connection does not hold the server open for the whole grace period.
  const inFlight = new Set<http.ServerResponse>();
  let draining = false;
  const endConnectionAfter = (res: http.ServerResponse) => {
    if (!res.headersSent) res.setHeader("connection", "close");
    else res.once("finish", () => httpServer.closeIdleConnections());
  };
  const httpServer = http.createServer((req, res) => {
    inFlight.add(res);
    res.once("close", () => inFlight.delete(res));
    if (draining) endConnectionAfter(res);
    if (req.method === "GET" && req.url === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: "SERVING", service: options.name }));
      return;
    }
    for (const route of routes) if (route(req, res)) return;
    connectHandler(req, res);
  });
  httpServer.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(listen.httpPort, listen.host, () => resolve());
  });
  const httpPort = (httpServer.address() as AddressInfo).port;
  const hostForUrl = listen.host.includes(":") ? `[${listen.host}]` : listen.host;

  let closing: Promise<void> | undefined;
  return {
    name: options.name,
    grpcPort,
    httpPort,
    grpcAddress: `${hostForUrl}:${grpcPort}`,
    httpUrl: `http://${hostForUrl}:${httpPort}`,
    close(graceMs = 10_000) {
      closing ??= (async () => {
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
