/**
 * A gRPC client over @grpc/grpc-js with the shape of connect-es's `Client<S>`, for services
 * described by protobuf-es descriptors (the server side is grpcServer.ts).
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { asBuffer, grpcPath, metadataHeaders } from "./grpcServer.js";
import { codecOf } from "./codecs.js";

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
    // No channelz service is served, so its per-call bookkeeping would be kept for nobody.
    "grpc.enable_channelz": 0,
    ...channelOptions,
    ...(options.interceptors ? { interceptors: options.interceptors } : {}),
  });
  const client: Record<string, unknown> = {};
  const upstream = options.upstream ? { name: options.upstream, address } : undefined;
  for (const method of service.methods) {
    const path = grpcPath(service, method);
    const serialize = (m: unknown) => asBuffer(toBinary(method.input, m as never));
    const deserialize = codecOf(method.output)?.decode ?? ((b: Buffer) => fromBinary(method.output, b));
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
