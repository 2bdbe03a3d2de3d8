/**
 * Numbers as people read them: thousands separators, amounts in yuan computed from integer fen
 * with bigint (never a float), times with their zone.
 */
function group(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A count: 1234567 -> "1,234,567". */
export function count(n: bigint | number): string {
  const v = typeof n === "bigint" ? n : BigInt(Math.trunc(n));
  return v < 0n ? `-${group((-v).toString())}` : group(v.toString());
}

/** Fen as yuan, exact: 123456n -> "1,234.56", -5n -> "-0.05". */
export function yuan(fen: bigint): string {
  const negative = fen < 0n;
  const abs = negative ? -fen : fen;
  const text = `${group((abs / 100n).toString())}.${(abs % 100n).toString().padStart(2, "0")}`;
  return negative ? `-${text}` : text;
}

/** Fen as yuan with an explicit sign for differences: "+59.33", "-68.63", "0.00". */
export function signedYuan(fen: bigint): string {
  return fen > 0n ? `+${yuan(fen)}` : yuan(fen);
}

let zone = "Asia/Shanghai";
export function setTimeZone(z: string): void {
  zone = z;
}
export function timeZone(): string {
  return zone;
}

/** The offset of the zone at a moment, e.g. "UTC+08:00". */
function zoneOffset(at: Date): string {
  try {
    const part = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" }).formatToParts(at).find((p) => p.type === "timeZoneName");
    const text = part?.value ?? "GMT";
    return text === "GMT" ? "UTC+00:00" : text.replace("GMT", "UTC");
  } catch {
    return "";
  }
}

/** A business time ("yyyy-MM-dd HH:mm:ss", in the business zone) with the zone's offset. */
export function businessTime(text: string): string {
  if (!text) return "";
  return `${text} ${zoneOffset(new Date())}`;
}

export function milliseconds(ms: bigint | number): string {
  const v = Number(ms);
  return v < 1000 ? `${v} ms` : `${(v / 1000).toFixed(2)} s`;
}

/** The business zone with its offset, e.g. "Asia/Shanghai (UTC+08:00)". */
export function zoneLabel(): string {
  return `${zone} (${zoneOffset(new Date())})`;
}
