/**
 * OpenAPI 3.0 documents of the Connect JSON endpoints, built from the protobuf-es descriptors, so
 * that the documentation cannot drift from proto/.
 *
 * Every unary RPC becomes `POST /<package.Service>/<Method>` with an application/json body (the
 * Connect unary protocol). Bodies use the proto field names (snake_case), as the servers emit
 * them; 64-bit integers are strings, enums are their value names, as in the proto3 JSON mapping.
 * Server-streaming RPCs use Connect's enveloped stream framing, which Swagger UI cannot speak, so
 * they are listed in their service's description instead of as operations.
 */
import {
  create,
  ScalarType,
  toJson,
  type DescEnum,
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  type JsonValue,
  type MessageInitShape,
} from "@bufbuild/protobuf";

/** The subset of an OpenAPI 3.0 Schema Object that the generator writes. */
export interface SchemaObject {
  $ref?: string;
  type?: "string" | "integer" | "number" | "boolean" | "object" | "array";
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  description?: string;
  enum?: string[];
  items?: SchemaObject;
  properties?: Record<string, SchemaObject>;
  additionalProperties?: SchemaObject | boolean;
  allOf?: SchemaObject[];
  required?: string[];
  example?: unknown;
  readOnly?: boolean;
  "x-protobuf-type"?: string;
  "x-protobuf-oneof"?: string;
}

export interface MediaTypeObject {
  schema: SchemaObject;
  example?: unknown;
}

export interface ResponseObject {
  description: string;
  content?: Record<string, MediaTypeObject>;
}

export interface OperationObject {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  requestBody: { required: true; content: Record<string, MediaTypeObject> };
  responses: Record<string, ResponseObject | { $ref: string }>;
}

export interface OpenApiDocument {
  openapi: "3.0.3";
  info: { title: string; version: string; description?: string };
  servers?: { url: string; description?: string }[];
  tags: { name: string; description?: string }[];
  paths: Record<string, { post: OperationObject }>;
  components: {
    schemas: Record<string, SchemaObject>;
    responses: Record<string, ResponseObject>;
  };
}

/** Example bodies of one RPC, as the JSON the Connect endpoint accepts and answers. */
export interface MethodExample {
  request?: unknown;
  response?: unknown;
  /** A request this method refuses, and the message it answers with: the 400 example. */
  invalid?: { request: unknown; message: string };
}

/** The first paragraph of a comment as one line: an operation's summary. */
export function summaryOf(comment: string): string {
  return comment.split(/\n\s*\n/)[0]!.replace(/\s*\n\s*/g, " ").trim();
}

export interface OpenApiOptions {
  title: string;
  version?: string;
  description?: string;
  services: DescService[];
  /** Proto comments by fully-qualified element name (the gen/ `*_comments.ts` modules). */
  comments?: Readonly<Record<string, string>>;
  /** Keyed by `<package.Service>/<Method>`. */
  examples?: Readonly<Record<string, MethodExample>>;
  /** Absolute base URL of the endpoints; the served document fills it in per request. */
  serverUrl?: string;
}

/** Connect error codes, as they appear in the `code` of an error body, with their HTTP status. */
export const CONNECT_ERROR_CODES: ReadonlyArray<readonly [code: string, httpStatus: number]> = [
  ["canceled", 499],
  ["unknown", 500],
  ["invalid_argument", 400],
  ["deadline_exceeded", 504],
  ["not_found", 404],
  ["already_exists", 409],
  ["permission_denied", 403],
  ["resource_exhausted", 429],
  ["failed_precondition", 400],
  ["aborted", 409],
  ["out_of_range", 400],
  ["unimplemented", 501],
  ["internal", 500],
  ["unavailable", 503],
  ["data_loss", 500],
  ["unauthenticated", 401],
];

const CONNECT_ERROR = "connect.error";
// Plain decimal, as the gateway accepts it (gatewayRequests.ts): no leading zero, sign only on a negative value.
const INT64_PATTERN = "^(0|-?[1-9][0-9]*)$";
const UINT64_PATTERN = "^(0|[1-9][0-9]*)$";

/** Well-known types have their own JSON forms in the proto3 JSON mapping. */
const WELL_KNOWN: Record<string, SchemaObject> = {
  "google.protobuf.Timestamp": { type: "string", format: "date-time", description: "RFC 3339 time, e.g. 2019-08-29T09:15:20Z." },
  "google.protobuf.Duration": { type: "string", pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$", description: 'Seconds with an "s" suffix, e.g. "1.5s".' },
  "google.protobuf.FieldMask": { type: "string", description: "Comma-separated field paths in lowerCamelCase." },
  "google.protobuf.Empty": { type: "object" },
  "google.protobuf.Struct": { type: "object", additionalProperties: true },
  "google.protobuf.Value": { description: "Any JSON value." },
  "google.protobuf.ListValue": { type: "array", items: {} },
  "google.protobuf.Any": { type: "object", properties: { "@type": { type: "string" } }, additionalProperties: true },
  "google.protobuf.BoolValue": { type: "boolean" },
  "google.protobuf.StringValue": { type: "string" },
  "google.protobuf.BytesValue": { type: "string", format: "byte" },
  "google.protobuf.Int32Value": { type: "integer", format: "int32" },
  "google.protobuf.UInt32Value": { type: "integer", minimum: 0, maximum: 4294967295 },
  "google.protobuf.Int64Value": { type: "string", format: "int64", pattern: INT64_PATTERN },
  "google.protobuf.UInt64Value": { type: "string", format: "uint64", pattern: UINT64_PATTERN },
  "google.protobuf.FloatValue": { type: "number", format: "float" },
  "google.protobuf.DoubleValue": { type: "number", format: "double" },
};

/** The JSON schema of a scalar in the proto3 JSON mapping. */
export function scalarSchema(scalar: ScalarType): SchemaObject {
  switch (scalar) {
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.BYTES:
      return { type: "string", format: "byte" };
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", minimum: 0, maximum: 4294967295 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64", pattern: INT64_PATTERN, example: "0" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: UINT64_PATTERN, example: "0" };
  }
}

export function schemaRef(typeName: string): string {
  return `#/components/schemas/${typeName}`;
}

export function methodPath(service: DescService, method: DescMethod): string {
  return `/${service.typeName}/${method.name}`;
}

/** Builds one document for the given services. */
export function openApiDocument(options: OpenApiOptions): OpenApiDocument {
  const comments = options.comments ?? {};
  const comment = (key: string): string | undefined => comments[key];
  const schemas: Record<string, SchemaObject> = {};
  const pending: (DescMessage | DescEnum)[] = [];

  const withDescription = (schema: SchemaObject, description: string | undefined): SchemaObject =>
    description === undefined ? schema : { ...schema, description };

  /** A reference to a message or enum schema, collected for components. */
  const refTo = (desc: DescMessage | DescEnum): SchemaObject => {
    const known = desc.kind === "message" ? WELL_KNOWN[desc.typeName] : undefined;
    if (known) return { ...known };
    if (!(desc.typeName in schemas) && !pending.includes(desc)) pending.push(desc);
    return { $ref: schemaRef(desc.typeName) };
  };

  const valueSchema = (field: DescField): SchemaObject => {
    switch (field.fieldKind) {
      case "scalar":
        return scalarSchema(field.scalar);
      case "enum":
        return refTo(field.enum);
      case "message":
        return refTo(field.message);
      case "list":
        return {
          type: "array",
          items:
            field.listKind === "scalar" ? scalarSchema(field.scalar) : field.listKind === "enum" ? refTo(field.enum) : refTo(field.message),
        };
      case "map": {
        const value =
          field.mapKind === "scalar" ? scalarSchema(field.scalar) : field.mapKind === "enum" ? refTo(field.enum) : refTo(field.message);
        return { type: "object", additionalProperties: value };
      }
    }
  };

  const fieldSchema = (message: DescMessage, field: DescField): SchemaObject => {
    const notes: string[] = [];
    const own = comment(`${message.typeName}.${field.name}`);
    if (own) notes.push(own);
    let schema = valueSchema(field);
    if (field.oneof) {
      const members = field.oneof.fields.map((f) => f.name).join(", ");
      const about = comment(`${message.typeName}.${field.oneof.name}`);
      notes.push(`One of \`${field.oneof.name}\`${about ? ` (${about})` : ""}: set at most one of ${members}.`);
      schema = { ...schema, "x-protobuf-oneof": field.oneof.name };
    }
    const description = notes.length > 0 ? notes.join("\n\n") : undefined;
    // In OpenAPI 3.0 the siblings of $ref are ignored, so a described reference is wrapped.
    if (schema.$ref !== undefined) {
      const { $ref, ...rest } = schema;
      return description === undefined && Object.keys(rest).length === 0 ? schema : { allOf: [{ $ref }], ...rest, ...(description ? { description } : {}) };
    }
    return withDescription(schema, description);
  };

  const messageSchema = (message: DescMessage): SchemaObject => {
    const properties: Record<string, SchemaObject> = {};
    for (const field of message.fields) properties[field.name] = fieldSchema(message, field);
    return withDescription({ type: "object", properties, "x-protobuf-type": message.typeName }, comment(message.typeName));
  };

  const enumSchema = (desc: DescEnum): SchemaObject => {
    const lines: string[] = [];
    const own = comment(desc.typeName);
    if (own) lines.push(own);
    const described = desc.values
      .map((v) => [v.name, comment(`${desc.typeName}.${v.name}`)] as const)
      .filter((pair): pair is readonly [string, string] => pair[1] !== undefined);
    if (described.length > 0) lines.push(described.map(([name, text]) => `- \`${name}\`: ${text}`).join("\n"));
    return withDescription(
      { type: "string", enum: desc.values.map((v) => v.name), "x-protobuf-type": desc.typeName },
      lines.length > 0 ? lines.join("\n\n") : undefined,
    );
  };

  const tags: OpenApiDocument["tags"] = [];
  const paths: OpenApiDocument["paths"] = {};
  for (const service of options.services) {
    const streaming = service.methods.filter((m) => m.methodKind !== "unary");
    const tagText: string[] = [];
    const own = comment(service.typeName);
    if (own) tagText.push(own);
    if (streaming.length > 0) {
      tagText.push(
        "Streaming RPCs, not callable from this page (they use Connect's enveloped stream framing); " +
          "call them over gRPC, e.g. with `buf curl --protocol grpc --http2-prior-knowledge`: " +
          streaming.map((m) => `\`${m.name}\` (${m.methodKind.replace("_", "-")}${comment(`${service.typeName}.${m.name}`) ? `: ${comment(`${service.typeName}.${m.name}`)}` : ""})`).join("; ") +
          ".",
      );
    }
    tags.push(tagText.length > 0 ? { name: service.typeName, description: tagText.join("\n\n") } : { name: service.typeName });

    for (const method of service.methods) {
      if (method.methodKind !== "unary") continue;
      const key = `${service.typeName}/${method.name}`;
      const example = options.examples?.[key];
      const request: MediaTypeObject = { schema: refTo(method.input) };
      if (example?.request !== undefined) request.example = example.request;
      const response: MediaTypeObject = { schema: refTo(method.output) };
      if (example?.response !== undefined) response.example = example.response;
      const about = comment(`${service.typeName}.${method.name}`);
      paths[methodPath(service, method)] = {
        post: {
          operationId: `${service.typeName}.${method.name}`.replace(/\./g, "_"),
          summary: about ? summaryOf(about) : method.name,
          ...(about && summaryOf(about) !== about ? { description: about } : {}),
          tags: [service.typeName],
          requestBody: { required: true, content: { "application/json": request } },
          responses: {
            "200": { description: `${method.output.name}`, content: { "application/json": response } },
            "400": {
              description:
                "The request broke a rule (`invalid_argument`, naming the field) or could not be parsed." +
                (example?.invalid ? ` The example answers the request \`${JSON.stringify(example.invalid.request)}\`.` : ""),
              content: {
                "application/json": {
                  schema: { $ref: schemaRef(CONNECT_ERROR) },
                  ...(example?.invalid ? { example: { code: "invalid_argument", message: example.invalid.message } } : {}),
                },
              },
            },
            default: { $ref: "#/components/responses/ConnectError" },
          },
        },
      };
    }
  }

  for (let desc = pending.shift(); desc; desc = pending.shift()) {
    schemas[desc.typeName] = desc.kind === "message" ? messageSchema(desc) : enumSchema(desc);
  }
  schemas[CONNECT_ERROR] = {
    type: "object",
    description: "A Connect error. The HTTP status follows the code: " + CONNECT_ERROR_CODES.map(([c, s]) => `${c} ${s}`).join(", ") + ".",
    properties: {
      code: { type: "string", enum: CONNECT_ERROR_CODES.map(([c]) => c) },
      message: { type: "string" },
      details: {
        type: "array",
        items: {
          type: "object",
          properties: { type: { type: "string" }, value: { type: "string", format: "byte" }, debug: { description: "The detail as JSON, when the server adds it." } },
        },
      },
    },
    required: ["code"],
  };

  const document: OpenApiDocument = {
    openapi: "3.0.3",
    info: {
      title: options.title,
      version: options.version ?? "v1",
      description: [
        options.description,
        "Connect protocol, unary JSON: `POST /<package.Service>/<Method>` with `Content-Type: application/json`. " +
          "Field names are the proto names (snake_case); 64-bit integers (money in fen) are JSON strings such as \"100\"; " +
          "enums are their value names. The same methods are served over gRPC (with server reflection) on the service's gRPC port.",
      ]
        .filter(Boolean)
        .join("\n\n"),
    },
    tags,
    paths,
    components: {
      schemas,
      responses: {
        ConnectError: { description: "An error, as a Connect error body.", content: { "application/json": { schema: { $ref: schemaRef(CONNECT_ERROR) } } } },
      },
    },
  };
  if (options.serverUrl) document.servers = [{ url: options.serverUrl }];
  return document;
}

/**
 * An example body written as a protobuf-es message init and rendered as the servers render JSON,
 * so that an example with a misspelt field does not compile.
 */
export function jsonExample<Desc extends DescMessage>(schema: Desc, init: MessageInitShape<Desc>): JsonValue {
  return toJson(schema, create(schema, init), { useProtoFieldName: true, alwaysEmitImplicit: true });
}
