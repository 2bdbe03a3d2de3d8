/**
 * Every way a client reaches a service, each a real client over the network: @grpc/grpc-js, the
 * Connect gRPC client (HTTP/2) against the grpc-js port, the Connect protocol (JSON over
 * HTTP/1.1), plain fetch with JSON, and `buf curl` as an external program over gRPC and over the
 * Connect protocol. Requests and answers are the contracts' snake_case JSON, so one assertion
 * serves every transport; errors arrive as ConnectError whichever transport carried them.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { fromJson, toJson, type DescMethod, type DescService, type JsonObject } from "@bufbuild/protobuf";
import { ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { codeFromString } from "@connectrpc/connect/protocol-connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { service as healthService } from "grpc-health-check";
import { createGrpcClient } from "../../services/shared/rpc/grpcClient.js";
import { JSON_OPTIONS, type RunningServer } from "../../services/shared/rpc/server.js";
import { REPO_ROOT } from "../support/paths.js";
import { postJson } from "../support/http.js";

export const BUF = join(REPO_ROOT, "node_modules", ".bin", "buf");
export const HEALTH_PROTO = join(REPO_ROOT, "node_modules", "grpc-health-check", "proto", "health", "v1", "health.proto");

export const TRANSPORTS = ["grpc-js", "connect-grpc", "connect", "http-json", "buf-curl-grpc", "buf-curl-connect"] as const;
export type TransportName = (typeof TRANSPORTS)[number];
/** Plain fetch posts unary JSON only; the others also carry server streams. */
export const STREAMING_TRANSPORTS = TRANSPORTS.filter((t) => t !== "http-json");

export interface ServiceCaller {
  transport: TransportName;
  /** One unary call; the answer as snake_case JSON. */
  unary(method: string, request: JsonObject): Promise<JsonObject>;
  /** Every message of a server-streaming call; absent where the transport cannot stream. */
  stream?(method: string, request: JsonObject): Promise<JsonObject[]>;
  close(): void;
}

type UnaryFn = (req: unknown) => Promise<unknown>;
type StreamFn = (req: unknown) => AsyncIterable<unknown>;

function methodOf(service: DescService, name: string): DescMethod {
  const method = service.methods.find((m) => m.name === name);
  if (!method) throw new Error(`${service.typeName} has no method ${name}`);
  return method;
}

function answerJson(method: DescMethod, message: unknown): JsonObject {
  return toJson(method.output, message as never, JSON_OPTIONS) as JsonObject;
}

/** A caller over a promise client shaped like connect-es's `Client<S>` (grpc-js or Connect). */
function clientCaller(transport: TransportName, service: DescService, client: unknown, close: () => void): ServiceCaller {
  const fns = client as Record<string, unknown>;
  return {
    transport,
    async unary(name, request) {
      const method = methodOf(service, name);
      return answerJson(method, await (fns[method.localName] as UnaryFn)(fromJson(method.input, request)));
    },
    async stream(name, request) {
      const method = methodOf(service, name);
      const out: JsonObject[] = [];
      const messages = (fns[method.localName] as StreamFn)(fromJson(method.input, request));
      for await (const message of messages) out.push(answerJson(method, message));
      return out;
    },
    close,
  };
}

/** The ConnectError an error body `{"code": "...", "message": "..."}` stands for. */
export function errorFromJson(text: string): ConnectError {
  let body: { code?: string; message?: string };
  try {
    body = JSON.parse(text) as { code?: string; message?: string };
  } catch {
    throw new Error(`not a Connect error body: ${text.slice(0, 500)}`);
  }
  const code = body.code === undefined ? undefined : codeFromString(body.code);
  if (code === undefined) throw new Error(`not a Connect error body: ${text.slice(0, 500)}`);
  return new ConnectError(body.message ?? "", code);
}

function fetchCaller(service: DescService, server: RunningServer): ServiceCaller {
  return {
    transport: "http-json",
    async unary(name, request) {
      const res = await postJson(server.httpUrl + `/${service.typeName}/${name}`, JSON.stringify(request));
      if (res.status !== 200) throw errorFromJson(res.text);
      return JSON.parse(res.text) as JsonObject;
    },
    close() {},
  };
}

export interface BufCurlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs `buf curl` with the repository's own module as schema. */
export function bufCurl(args: string[]): Promise<BufCurlResult> {
  return new Promise((resolve, reject) => {
    execFile(BUF, ["curl", ...args], { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") reject(err);
      else resolve({ exitCode: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

/** buf curl prints each message as an indented JSON document; top-level braces start a line. */
function jsonDocuments(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === "") return [];
  return trimmed.split(/\n(?=\{)/).map((doc) => JSON.parse(doc) as unknown);
}

function bufCurlCaller(transport: "buf-curl-grpc" | "buf-curl-connect", service: DescService, server: RunningServer): ServiceCaller {
  const call = async (name: string, request: JsonObject): Promise<JsonObject[]> => {
    const method = methodOf(service, name);
    const target =
      transport === "buf-curl-grpc"
        ? ["--protocol", "grpc", "--http2-prior-knowledge", `http://${server.grpcAddress}/${service.typeName}/${name}`]
        : ["--protocol", "connect", `${server.httpUrl}/${service.typeName}/${name}`];
    const res = await bufCurl(["--schema", REPO_ROOT, "--data", JSON.stringify(request), ...target]);
    if (res.exitCode !== 0) throw errorFromJson(res.stderr);
    // buf curl writes proto3 JSON with camelCase names; read it back through the schema.
    return jsonDocuments(res.stdout).map((doc) => answerJson(method, fromJson(method.output, doc as JsonObject)));
  };
  return {
    transport,
    async unary(name, request) {
      const [only, ...rest] = await call(name, request);
      if (!only || rest.length > 0) throw new Error(`buf curl printed ${rest.length + (only ? 1 : 0)} messages for a unary call`);
      return only;
    },
    stream: call,
    close() {},
  };
}

/** One caller per transport for a service served at `server`. */
export function callerFor(transport: TransportName, service: DescService, server: RunningServer): ServiceCaller {
  switch (transport) {
    case "grpc-js": {
      const handle = createGrpcClient(service, server.grpcAddress);
      return clientCaller(transport, service, handle.client, handle.close);
    }
    case "connect-grpc": {
      const baseUrl = `http://${server.grpcAddress}`;
      const sessionManager = new Http2SessionManager(baseUrl);
      // The gRPC transport always speaks HTTP/2 (prior knowledge on http://).
      const t: Transport = createGrpcTransport({ baseUrl, sessionManager });
      return clientCaller(transport, service, createClient(service, t), () => sessionManager.abort());
    }
    case "connect": {
      const t: Transport = createConnectTransport({ baseUrl: server.httpUrl, httpVersion: "1.1" });
      return clientCaller(transport, service, createClient(service, t), () => {});
    }
    case "http-json":
      return fetchCaller(service, server);
    case "buf-curl-grpc":
    case "buf-curl-connect":
      return bufCurlCaller(transport, service, server);
  }
}

export type HealthStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

interface HealthClient extends grpc.Client {
  check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: HealthStatus }) => void): void;
}

/** grpc.health.v1.Health/Check through grpc-js with grpc-health-check's own proto definition. */
export async function grpcHealthCheck(grpcAddress: string, serviceName: string): Promise<HealthStatus> {
  const Client = grpc.makeGenericClientConstructor(healthService as unknown as grpc.ServiceDefinition, "Health");
  const client = new Client(grpcAddress, grpc.credentials.createInsecure()) as unknown as HealthClient;
  try {
    return await new Promise<HealthStatus>((resolve, reject) =>
      client.check({ service: serviceName }, (err, res) => (err ? reject(new ConnectError(err.details, err.code as number)) : resolve(res!.status))),
    );
  } finally {
    client.close();
  }
}
