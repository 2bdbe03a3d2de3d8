/**
 * Decoding of a request message from its protobuf binary encoding, the same for every method:
 * the wire type of each field is checked against the descriptor before protobuf-es reads it, and
 * anything undecodable becomes an `UndecodableRequest` that the handler answers with
 * INVALID_ARGUMENT.
 */
import { fromBinary, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

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

/** What the check needs of one field: the wire types it may arrive with, and its message type if it nests one. */
interface FieldCheck {
  field: DescField;
  wireTypes: readonly WireType[];
  nested: DescMessage | undefined;
}

/** Each message type's fields by number, worked out once per type. */
const fieldChecks = new WeakMap<DescMessage, Map<number, FieldCheck>>();

function fieldChecksOf(schema: DescMessage): Map<number, FieldCheck> {
  let checks = fieldChecks.get(schema);
  if (checks === undefined) {
    checks = new Map();
    for (const field of schema.fields) {
      const nested = field.fieldKind === "message" ? field.message : field.fieldKind === "list" && field.listKind === "message" ? field.message : undefined;
      checks.set(field.number, { field, wireTypes: wireTypesOf(field), nested });
    }
    fieldChecks.set(schema, checks);
  }
  return checks;
}

/**
 * protobuf-es reads a known field by its declared type whatever wire type it arrives with, so
 * a field sent with the wrong wire type could decode into a value nobody sent. Refuse it instead.
 */
function checkWireTypes(schema: DescMessage, bytes: Uint8Array, depth = 0): void {
  if (depth > 32) throw new Error("messages nested too deeply");
  const checks = fieldChecksOf(schema);
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    const check = checks.get(no);
    if (!check) {
      reader.skip(wireType, no);
      continue;
    }
    if (!check.wireTypes.includes(wireType)) throw new Error(`field ${check.field.name} (${no}) arrived with wire type ${wireType}`);
    if (check.nested) checkWireTypes(check.nested, reader.bytes(), depth + 1);
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
