/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha) for grpc-js, answered from the
 * FileDescriptorProtos that protobuf-es keeps for every generated file. With it, `buf curl`,
 * grpcurl and similar clients list and call the services without being given the schema.
 *
 * The reflection and health contracts are not part of proto/, so their descriptors are written
 * here; the health one lets clients call the standard grpc.health.v1 service by name too.
 *
 * The contracts' descriptors are served with their SourceCodeInfo (sourceInfo.ts), so
 * `grpcurl describe` and grpcui show the proto comments.
 */
import * as grpc from "@grpc/grpc-js";
import { sourceCodeInfoOf } from "./sourceInfo.js";
import { create, createFileRegistry, fromBinary, fromJson, toBinary, type DescFile, type DescService } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import {
  FileDescriptorProtoSchema,
  type DescriptorProtoJson,
  type FieldDescriptorProto_TypeJson,
  type FileDescriptorProtoJson,
} from "@bufbuild/protobuf/wkt";

type FieldSpec = [name: string, number: number, type: FieldDescriptorProto_TypeJson, options?: { typeName?: string; repeated?: boolean; oneof?: number }];

function message(name: string, fields: FieldSpec[], oneofs: string[] = []): DescriptorProtoJson {
  return {
    name,
    field: fields.map(([fieldName, number, type, o = {}]) => ({
      name: fieldName,
      number,
      type,
      label: o.repeated ? "LABEL_REPEATED" : "LABEL_OPTIONAL",
      ...(o.typeName ? { typeName: o.typeName } : {}),
      ...(o.oneof !== undefined ? { oneofIndex: o.oneof } : {}),
    })),
    ...(oneofs.length > 0 ? { oneofDecl: oneofs.map((n) => ({ name: n })) } : {}),
  };
}

/** grpc/reflection/{v1,v1alpha}/reflection.proto, field for field. */
function reflectionFile(version: "v1" | "v1alpha"): FileDescriptorProtoJson {
  const pkg = `grpc.reflection.${version}`;
  const t = (n: string) => `.${pkg}.${n}`;
  return {
    name: `grpc/reflection/${version}/reflection.proto`,
    package: pkg,
    syntax: "proto3",
    messageType: [
      message(
        "ServerReflectionRequest",
        [
          ["host", 1, "TYPE_STRING"],
          ["file_by_filename", 3, "TYPE_STRING", { oneof: 0 }],
          ["file_containing_symbol", 4, "TYPE_STRING", { oneof: 0 }],
          ["file_containing_extension", 5, "TYPE_MESSAGE", { oneof: 0, typeName: t("ExtensionRequest") }],
          ["all_extension_numbers_of_type", 6, "TYPE_STRING", { oneof: 0 }],
          ["list_services", 7, "TYPE_STRING", { oneof: 0 }],
        ],
        ["message_request"],
      ),
      message("ExtensionRequest", [
        ["containing_type", 1, "TYPE_STRING"],
        ["extension_number", 2, "TYPE_INT32"],
      ]),
      message(
        "ServerReflectionResponse",
        [
          ["valid_host", 1, "TYPE_STRING"],
          ["original_request", 2, "TYPE_MESSAGE", { typeName: t("ServerReflectionRequest") }],
          ["file_descriptor_response", 4, "TYPE_MESSAGE", { oneof: 0, typeName: t("FileDescriptorResponse") }],
          ["all_extension_numbers_response", 5, "TYPE_MESSAGE", { oneof: 0, typeName: t("ExtensionNumberResponse") }],
          ["list_services_response", 6, "TYPE_MESSAGE", { oneof: 0, typeName: t("ListServiceResponse") }],
          ["error_response", 7, "TYPE_MESSAGE", { oneof: 0, typeName: t("ErrorResponse") }],
        ],
        ["message_response"],
      ),
      message("FileDescriptorResponse", [["file_descriptor_proto", 1, "TYPE_BYTES", { repeated: true }]]),
      message("ExtensionNumberResponse", [
        ["base_type_name", 1, "TYPE_STRING"],
        ["extension_number", 2, "TYPE_INT32", { repeated: true }],
      ]),
      message("ListServiceResponse", [["service", 1, "TYPE_MESSAGE", { repeated: true, typeName: t("ServiceResponse") }]]),
      message("ServiceResponse", [["name", 1, "TYPE_STRING"]]),
      message("ErrorResponse", [
        ["error_code", 1, "TYPE_INT32"],
        ["error_message", 2, "TYPE_STRING"],
      ]),
    ],
    service: [
      {
        name: "ServerReflection",
        method: [
          {
            name: "ServerReflectionInfo",
            inputType: t("ServerReflectionRequest"),
            outputType: t("ServerReflectionResponse"),
            clientStreaming: true,
            serverStreaming: true,
          },
        ],
      },
    ],
  };
}

/** grpc/health/v1/health.proto (Check and Watch), the service grpc-health-check serves. */
const HEALTH_FILE: FileDescriptorProtoJson = {
  name: "grpc/health/v1/health.proto",
  package: "grpc.health.v1",
  syntax: "proto3",
  messageType: [
    message("HealthCheckRequest", [["service", 1, "TYPE_STRING"]]),
    {
      ...message("HealthCheckResponse", [["status", 1, "TYPE_ENUM", { typeName: ".grpc.health.v1.HealthCheckResponse.ServingStatus" }]]),
      enumType: [
        {
          name: "ServingStatus",
          value: [
            { name: "UNKNOWN", number: 0 },
            { name: "SERVING", number: 1 },
            { name: "NOT_SERVING", number: 2 },
            { name: "SERVICE_UNKNOWN", number: 3 },
          ],
        },
      ],
    },
  ],
  service: [
    {
      name: "Health",
      method: [
        { name: "Check", inputType: ".grpc.health.v1.HealthCheckRequest", outputType: ".grpc.health.v1.HealthCheckResponse" },
        { name: "Watch", inputType: ".grpc.health.v1.HealthCheckRequest", outputType: ".grpc.health.v1.HealthCheckResponse", serverStreaming: true },
      ],
    },
  ],
};

function serviceOf(file: FileDescriptorProtoJson): DescService {
  const proto = fromJson(FileDescriptorProtoSchema, file as never);
  const registry = createFileRegistry(proto, () => undefined);
  const service = registry.getFile(proto.name)?.services[0];
  if (!service) throw new Error(`${proto.name} has no service`);
  return service;
}

const REFLECTION_V1 = serviceOf(reflectionFile("v1"));
const REFLECTION_V1ALPHA = serviceOf(reflectionFile("v1alpha"));
const HEALTH = serviceOf(HEALTH_FILE);

/** The descriptor of grpc.reflection.{v1,v1alpha}.ServerReflection, e.g. for a client. */
export function reflectionService(version: "v1" | "v1alpha"): DescService {
  return version === "v1" ? REFLECTION_V1 : REFLECTION_V1ALPHA;
}

/** error_code values of ErrorResponse are gRPC status codes. */
const NOT_FOUND = 5;
const INVALID_ARGUMENT = 3;

/** Files by name and by the symbols they define, with their serialized descriptors. */
export class DescriptorIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly symbols = new Map<string, DescFile>();
  private readonly encoded = new Map<DescFile, Uint8Array>();
  readonly serviceNames: string[] = [];

  constructor(services: DescService[]) {
    for (const service of services) {
      this.addFile(service.file);
      if (!this.serviceNames.includes(service.typeName)) this.serviceNames.push(service.typeName);
    }
  }

  private addFile(file: DescFile): void {
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    for (const desc of nestedTypes(file)) {
      this.symbols.set(desc.typeName, file);
      if (desc.kind === "service") for (const m of desc.methods) this.symbols.set(`${desc.typeName}.${m.name}`, file);
      if (desc.kind === "message") for (const f of desc.fields) this.symbols.set(`${desc.typeName}.${f.name}`, file);
      if (desc.kind === "enum") {
        // Enum values are scoped like siblings of their enum.
        const scope = desc.typeName.slice(0, desc.typeName.lastIndexOf(".") + 1);
        for (const v of desc.values) this.symbols.set(scope + v.name, file);
      }
    }
    for (const dep of file.dependencies) this.addFile(dep);
  }

  fileByName(name: string): DescFile | undefined {
    return this.files.get(name);
  }

  fileContainingSymbol(symbol: string): DescFile | undefined {
    return this.symbols.get(symbol.replace(/^\./, ""));
  }

  hasMessage(typeName: string): boolean {
    const file = this.fileContainingSymbol(typeName);
    if (!file) return false;
    for (const desc of nestedTypes(file)) if (desc.kind === "message" && desc.typeName === typeName.replace(/^\./, "")) return true;
    return false;
  }

  /** The file and, unless already sent on this stream, its transitive imports. */
  withDependencies(file: DescFile, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const queue = [file];
    for (let f = queue.shift(); f; f = queue.shift()) {
      if (out.length === 0 || !sent.has(f.proto.name)) {
        sent.add(f.proto.name);
        out.push(this.encode(f));
      }
      queue.push(...f.dependencies);
    }
    return out;
  }

  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file);
    if (!bytes) {
      const sourceCodeInfo = file.proto.sourceCodeInfo ?? sourceCodeInfoOf(file.proto.name);
      bytes = toBinary(FileDescriptorProtoSchema, sourceCodeInfo ? { ...file.proto, sourceCodeInfo } : file.proto);
      this.encoded.set(file, bytes);
    }
    return bytes;
  }
}

interface ReflectionRequest {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } }
    | { case: undefined; value?: undefined };
}

type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

export function answerReflection(index: DescriptorIndex, req: ReflectionRequest, sent: Set<string>): ReflectionAnswer {
  const notFound = (what: string): ReflectionAnswer => ({ case: "errorResponse", value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` } });
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return { case: "listServicesResponse", value: { service: index.serviceNames.map((name) => ({ name })) } };
    case "fileByFilename": {
      const file = index.fileByName(r.value);
      return file ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file, sent) } } : notFound(`file ${r.value}`);
    }
    case "fileContainingSymbol": {
      const file = index.fileContainingSymbol(r.value);
      return file ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: index.withDependencies(file, sent) } } : notFound(`symbol ${r.value}`);
    }
    case "fileContainingExtension":
      // None of the served contracts declare extensions.
      return notFound(`extension ${r.value.extensionNumber} of ${r.value.containingType}`);
    case "allExtensionNumbersOfType":
      return index.hasMessage(r.value)
        ? { case: "allExtensionNumbersResponse", value: { baseTypeName: r.value.replace(/^\./, ""), extensionNumber: [] } }
        : notFound(`type ${r.value}`);
    default:
      return { case: "errorResponse", value: { errorCode: INVALID_ARGUMENT, errorMessage: "empty reflection request" } };
  }
}

function addReflectionVersion(server: grpc.Server, reflection: DescService, index: DescriptorIndex): void {
  const method = reflection.methods[0]!;
  const definition: grpc.ServiceDefinition = {
    ServerReflectionInfo: {
      path: `/${reflection.typeName}/${method.name}`,
      requestStream: true,
      responseStream: true,
      requestSerialize: (m: unknown) => Buffer.from(toBinary(method.input, m as never)),
      requestDeserialize: (b: Buffer) => fromBinary(method.input, b),
      responseSerialize: (m: unknown) => Buffer.from(toBinary(method.output, m as never)),
      responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
      originalName: "serverReflectionInfo",
    },
  };
  const handler = (call: grpc.ServerDuplexStream<unknown, unknown>) => {
    const sent = new Set<string>();
    call.on("data", (raw: unknown) => {
      const req = raw as ReflectionRequest;
      const answer = answerReflection(index, req, sent);
      call.write(create(method.output, { validHost: req.host, originalRequest: raw, messageResponse: answer } as never));
    });
    call.on("end", () => call.end());
    call.on("error", () => call.end());
  };
  server.addService(definition, { ServerReflectionInfo: handler as grpc.handleBidiStreamingCall<unknown, unknown> });
}

/**
 * Adds both reflection versions for the given services (plus reflection itself and, when the
 * server has it, grpc.health.v1.Health).
 */
export function addReflectionService(server: grpc.Server, services: DescService[], options: { health?: boolean } = {}): void {
  const index = new DescriptorIndex([...services, ...(options.health === false ? [] : [HEALTH]), REFLECTION_V1, REFLECTION_V1ALPHA]);
  addReflectionVersion(server, REFLECTION_V1, index);
  addReflectionVersion(server, REFLECTION_V1ALPHA, index);
}
