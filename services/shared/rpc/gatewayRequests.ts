/**
 * What the HTTP port (connect-node: the Connect protocol, gRPC-web and gRPC over HTTP/1.1) checks
 * in a request message before connect-node decodes it, so that the gateway refuses exactly what
 * the gRPC port refuses, with INVALID_ARGUMENT naming the field:
 *
 * - Integers in JSON written as anything but plain decimal text. protobuf-es reads a 64-bit
 *   integer string with BigInt() and a 32-bit one with Number(), which take "0x10", "0b11",
 *   "0o17", " 100", "1e3" and "" (as 0). Here an integer field given as a JSON string must be
 *   digits without a leading zero (a minus sign only on a signed type); a JSON number must be an
 *   exact integer in range, which protobuf-es checks itself. Every integer field of the method's
 *   input message is found from its descriptor, nested messages and lists included, so a new RPC
 *   is covered without listing its fields anywhere.
 * - Binary messages that do not decode (truncated, a field with the wrong wire type). connect-node
 *   answers those with INTERNAL "parse binary: …"; decode.ts's decodeRequest says why instead.
 *
 * A refused message is never handed to connect-node's decoder: the request body it reads fails
 * with the INVALID_ARGUMENT, which every protocol's handler then answers in its own framing.
 * Anything this check cannot read (an unknown compression, a broken envelope, a body over the
 * size limit, text that is not JSON) passes through unchanged, for connect-node to refuse as it
 * always did.
 */
import { ScalarType, type DescField, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { hasCustomJsonRepresentation, isWrapperDesc } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  compressedFlag,
  createAsyncIterable,
  transformSplitEnvelope,
  type Compression,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { decodeRequest, UndecodableRequest } from "./decode.js";

const UNSIGNED_DECIMAL = /^(0|[1-9][0-9]*)$/;
const SIGNED_DECIMAL = /^(0|-?[1-9][0-9]*)$/;

function integerSignedness(scalar: ScalarType): "signed" | "unsigned" | undefined {
  switch (scalar) {
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return "signed";
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return "unsigned";
    default:
      return undefined;
  }
}

function shown(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/** Why `value` is not acceptable JSON text for an integer scalar, or undefined. */
function integerTextProblem(scalar: ScalarType, value: JsonValue): string | undefined {
  const signedness = integerSignedness(scalar);
  if (signedness === undefined || typeof value !== "string") return undefined;
  if ((signedness === "signed" ? SIGNED_DECIMAL : UNSIGNED_DECIMAL).test(value)) return undefined;
  return `must be a plain decimal integer such as "100" (no sign, whitespace, leading zero, exponent or 0x/0b/0o prefix), got ${shown(value)}`;
}

const isObject = (v: JsonValue): v is { [k: string]: JsonValue } => v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * The first integer written in a notation other than plain decimal in a JSON request, as
 * "<field path>: <rule>", or undefined. Shapes protobuf-es refuses anyway (a string for a
 * message, an unknown field) are left to it.
 */
export function integerNotationProblem(schema: DescMessage, json: JsonValue, path = "", depth = 0): string | undefined {
  if (depth > 64 || !isObject(json)) return undefined;
  // Wrappers (Int64Value…) are checked as their scalar where a field holds one; the other
  // well-known types with a JSON form of their own have no integer written as text.
  if (hasCustomJsonRepresentation(schema)) return undefined;
  for (const [key, value] of Object.entries(json)) {
    const field = schema.fields.find((f) => f.name === key || f.jsonName === key);
    if (!field || value === null) continue;
    const problem = fieldProblem(field, value, `${path}${field.name}`, depth);
    if (problem) return problem;
  }
  return undefined;
}

function fieldProblem(field: DescField, value: JsonValue, path: string, depth: number): string | undefined {
  const checkValue = (kind: "scalar" | "message", v: JsonValue, at: string): string | undefined => {
    if (kind === "scalar") {
      const rule = field.scalar === undefined ? undefined : integerTextProblem(field.scalar, v);
      return rule && `${at}: ${rule}`;
    }
    const message = field.message!;
    if (isWrapperDesc(message)) {
      const rule = integerTextProblem(message.fields[0]!.scalar, v);
      return rule && `${at}: ${rule}`;
    }
    return integerNotationProblem(message, v, `${at}.`, depth + 1);
  };
  switch (field.fieldKind) {
    case "scalar":
      return checkValue("scalar", value, path);
    case "enum":
      return undefined;
    case "message":
      return checkValue("message", value, path);
    case "list":
      if (!Array.isArray(value) || field.listKind === "enum") return undefined;
      for (const [i, item] of value.entries()) {
        const problem = checkValue(field.listKind, item, `${path}[${i}]`);
        if (problem) return problem;
      }
      return undefined;
    case "map":
      if (!isObject(value)) return undefined;
      for (const [k, v] of Object.entries(value)) {
        const keyRule = integerTextProblem(field.mapKey, k);
        if (keyRule) return `${path} key: ${keyRule}`;
        if (field.mapKind === "enum") continue;
        const problem = checkValue(field.mapKind, v, `${path}[${JSON.stringify(k)}]`);
        if (problem) return problem;
      }
      return undefined;
  }
}

/** Why one request message cannot be accepted, or undefined to let connect-node decode it. */
export function messageProblem(schema: DescMessage, bytes: Uint8Array, binary: boolean): string | undefined {
  if (binary) {
    const decoded = decodeRequest(schema, bytes);
    return decoded instanceof UndecodableRequest ? decoded.reason : undefined;
  }
  let json: JsonValue;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes)) as JsonValue;
  } catch {
    return undefined; // connect-node refuses it with its own message
  }
  return integerNotationProblem(schema, json);
}

interface RequestFormat {
  binary: boolean;
  /** Messages in 5-byte-prefixed envelopes (streaming Connect, gRPC-web, gRPC). */
  enveloped: boolean;
  /** The header naming the request's compression. */
  compressionHeader: string;
}

function requestFormat(contentType: string | null): RequestFormat | undefined {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json") return { binary: false, enveloped: false, compressionHeader: "content-encoding" };
  if (type === "application/proto") return { binary: true, enveloped: false, compressionHeader: "content-encoding" };
  const m = /^application\/(connect|grpc-web|grpc)(?:\+(proto|json))?$/.exec(type);
  if (!m || (m[1] === "connect" && m[2] === undefined)) return undefined;
  return { binary: m[2] !== "json", enveloped: true, compressionHeader: m[1] === "connect" ? "connect-content-encoding" : "grpc-encoding" };
}

export interface GatewayCheckOptions {
  /** The largest message accepted (connect-node's readMaxBytes). */
  readMaxBytes: number;
  /** The compressions connect-node accepts. */
  compressions: Compression[];
}

/** A body read whole (`complete`), or as far as it was read before it was too big or failed. */
interface ReadBody {
  chunks: Uint8Array[];
  complete: boolean;
  rest?: AsyncIterator<Uint8Array>;
  error?: unknown;
}

async function readBody(body: AsyncIterable<Uint8Array>, limit: number): Promise<ReadBody> {
  const it = body[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const step = await it.next();
      if (step.done) return { chunks, complete: true };
      chunks.push(step.value);
      size += step.value.byteLength;
      if (size > limit) return { chunks, complete: false, rest: it };
    }
  } catch (error) {
    return { chunks, complete: false, error };
  }
}

/** The body as it arrived, for connect-node to read. */
async function* replay(read: ReadBody): AsyncGenerator<Uint8Array> {
  yield* read.chunks;
  if (read.error !== undefined) throw read.error;
  if (read.rest) for (let step = await read.rest.next(); !step.done; step = await read.rest.next()) yield step.value;
}

/** A body whose reading fails with the refusal, which the protocol handler answers. */
async function* refused(problem: string): AsyncGenerator<Uint8Array> {
  throw new ConnectError(problem, Code.InvalidArgument);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return all;
}

/** The request's messages, uncompressed; undefined when they cannot be read here. */
async function messagesOf(bytes: Uint8Array, format: RequestFormat, compression: Compression | null, options: GatewayCheckOptions): Promise<Uint8Array[] | undefined> {
  try {
    if (!format.enveloped) return [compression ? await compression.decompress(bytes, options.readMaxBytes) : bytes];
    const messages: Uint8Array[] = [];
    for await (const envelope of transformSplitEnvelope(options.readMaxBytes)(createAsyncIterable([bytes]))) {
      if ((envelope.flags & ~compressedFlag) !== 0) return undefined; // not a request message: connect-node's to refuse
      if ((envelope.flags & compressedFlag) === 0) messages.push(envelope.data);
      else if (compression) messages.push(await compression.decompress(envelope.data, options.readMaxBytes));
      else return undefined;
    }
    return messages;
  } catch {
    return undefined;
  }
}

/** The named compression, null for none, undefined for one connect-node does not accept either. */
function compressionNamed(name: string | null, options: GatewayCheckOptions): Compression | null | undefined {
  if (name === null || name === "" || name === "identity") return null;
  return options.compressions.find((c) => c.name === name);
}

function unaryConnectError(problem: string): UniversalServerResponse {
  const err = new ConnectError(problem, Code.InvalidArgument);
  return {
    status: codeToHttpStatus(err.code),
    header: new Headers({ "content-type": "application/json" }),
    body: createAsyncIterable([errorToJsonBytes(err, {})]),
  };
}

/** Connect's GET form of a unary call: the message is in the query string. */
async function checkGet(req: UniversalServerRequest, schema: DescMessage, options: GatewayCheckOptions): Promise<string | undefined> {
  const query = new URL(req.url).searchParams;
  const encoding = query.get("encoding");
  if (encoding !== "json" && encoding !== "proto") return undefined;
  const compression = compressionNamed(query.get("compression"), options);
  if (compression === undefined) return undefined;
  try {
    const message = query.get("message") ?? "";
    const raw = query.get("base64") === "1" ? base64Decode(message) : new TextEncoder().encode(message);
    const [bytes] = (await messagesOf(raw, { binary: encoding === "proto", enveloped: false, compressionHeader: "" }, compression, options)) ?? [];
    return bytes && messageProblem(schema, bytes, encoding === "proto");
  } catch {
    return undefined;
  }
}

/** The handler, refusing the requests whose message `messageProblem` finds fault with. */
export function checkedGatewayHandler(handler: UniversalHandler, options: GatewayCheckOptions): UniversalHandler {
  const schema = handler.method.input;
  // Room for the envelope prefix of the one request message of a unary or server-streaming call.
  const bufferLimit = options.readMaxBytes + 5;
  const checked = async (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    if (req.method === "GET") {
      const problem = await checkGet(req, schema, options);
      return problem ? unaryConnectError(problem) : handler(req);
    }
    const format = requestFormat(req.header.get("content-type"));
    const body = req.body;
    if (!format || typeof body !== "object" || body === null || !(Symbol.asyncIterator in body)) return handler(req);
    const compression = compressionNamed(req.header.get(format.compressionHeader), options);
    const declared = Number(req.header.get("content-length") ?? NaN);
    if (compression === undefined || declared > bufferLimit) return handler(req);
    const read = await readBody(body as AsyncIterable<Uint8Array>, bufferLimit);
    if (read.complete) {
      const messages = await messagesOf(concat(read.chunks), format, compression, options);
      for (const message of messages ?? []) {
        const problem = messageProblem(schema, message, format.binary);
        if (problem) return handler({ ...req, body: refused(problem) });
      }
    }
    return handler({ ...req, body: replay(read) });
  };
  return Object.assign(checked, {
    protocolNames: handler.protocolNames,
    service: handler.service,
    method: handler.method,
    requestPath: handler.requestPath,
    allowedMethods: handler.allowedMethods,
    supportedContentType: handler.supportedContentType,
  });
}
