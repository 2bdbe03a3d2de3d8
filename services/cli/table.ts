/** Plain-text tables for the terminal: aligned columns, numbers to the right, CJK counted wide. */

/** Columns of East Asian wide characters take two cells in a terminal. */
const WIDE = /[\u1100-\u115F\u2E80-\u303E\u3041-\u33FF\u3400-\u4DBF\u4E00-\u9FFF\uA000-\uA4CF\uAC00-\uD7A3\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFF60\uFFE0-\uFFE6]/g;

export function displayWidth(text: string): number {
  return [...text].length + (text.match(WIDE)?.length ?? 0);
}

function pad(text: string, width: number, right: boolean): string {
  const fill = " ".repeat(Math.max(0, width - displayWidth(text)));
  return right ? fill + text : text + fill;
}

export type Cell = string | number | bigint | boolean;

export interface Column {
  header: string;
  /** Right-aligned; numbers are by default. */
  right?: boolean;
}

function show(cell: Cell): string {
  if (typeof cell === "boolean") return cell ? "yes" : "no";
  return String(cell);
}

/** A table with a header line and a rule under it; an optional footer line under another rule. */
export function table(columns: (string | Column)[], rows: Cell[][], footer?: Cell[]): string {
  const cols = columns.map((c) => (typeof c === "string" ? { header: c } : c));
  const all = footer ? [...rows, footer] : rows;
  const right = cols.map((c, i) => c.right ?? (all.length > 0 && all.every((r) => r[i] === undefined || typeof r[i] === "number" || typeof r[i] === "bigint")));
  const widths = cols.map((c, i) => Math.max(displayWidth(c.header), ...all.map((r) => displayWidth(show(r[i] ?? "")))));
  const line = (cells: string[]) => cells.map((text, i) => pad(text, widths[i]!, right[i]!)).join("  ").trimEnd();
  const rule = line(widths.map((w) => "-".repeat(w)));
  const out = [line(cols.map((c) => c.header)), rule, ...rows.map((r) => line(cols.map((_, i) => show(r[i] ?? ""))))];
  if (footer) out.push(rule, line(cols.map((_, i) => show(footer[i] ?? ""))));
  return out.join("\n") + "\n";
}

/** One record as `name  value` lines. */
export function record(pairs: [string, Cell][]): string {
  const width = Math.max(...pairs.map(([k]) => displayWidth(k)));
  return pairs.map(([k, v]) => `${pad(k, width, false)}  ${show(v)}`.trimEnd()).join("\n") + "\n";
}
