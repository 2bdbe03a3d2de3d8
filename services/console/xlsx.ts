/**
 * A streaming .xlsx writer for the console's spreadsheet downloads: rows in, a zip (fflate) of
 * SpreadsheetML parts out, one sheet after another (Excel's limit is 1,048,576 rows a sheet).
 *
 * Every cell is text (an inline string) unless its column is declared numeric and the value is
 * an integer of at most 15 digits, which a spreadsheet's double holds exactly. So 20-digit ids
 * keep every digit, and a value such as `=HYPERLINK(…)` is a string cell: spreadsheets never
 * evaluate a string cell as a formula (only <f> elements are formulas, and none is written).
 */
import { Zip, ZipDeflate } from "fflate";

const MAX_ROWS_PER_SHEET = 1_048_576;
/** Excel's limit on the characters of one cell. */
const MAX_CELL_CHARS = 32_767;
const SAFE_INTEGER = /^-?\d{1,15}$/;

// Characters XML 1.0 does not allow, and lone surrogates.
// eslint-disable-next-line no-control-regex
const NOT_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function xmlText(text: string): string {
  return text
    .replace(NOT_XML, "\uFFFD")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

function cell(value: string, numeric: boolean): string {
  if (numeric && SAFE_INTEGER.test(value)) return `<c><v>${value}</v></c>`;
  if (value === "") return "<c/>";
  const text = value.length > MAX_CELL_CHARS ? value.slice(0, MAX_CELL_CHARS) : value;
  return `<c t="inlineStr"><is><t xml:space="preserve">${xmlText(text)}</t></is></c>`;
}

const CONTENT_TYPES = (sheets: number) =>
  `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>${Array.from(
    { length: sheets },
    (_, i) => `<Override PartName="/xl/worksheets/sheet${i + 1}.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>`,
  ).join("")}</Types>`;

const ROOT_RELS = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>`;

const WORKBOOK = (names: string[]) =>
  `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>${names
    .map((n, i) => `<sheet name="${xmlText(n)}" sheetId="${i + 1}" r:id="rId${i + 1}"/>`)
    .join("")}</sheets></workbook>`;

const WORKBOOK_RELS = (sheets: number) =>
  `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">${Array.from(
    { length: sheets },
    (_, i) => `<Relationship Id="rId${i + 1}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet${i + 1}.xml"/>`,
  ).join("")}<Relationship Id="rId${sheets + 1}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>`;

const STYLES = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts><fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs></styleSheet>`;

const SHEET_START = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>`;
const SHEET_END = `</sheetData></worksheet>`;

export interface XlsxOptions {
  /** Sheet name (Excel allows 31 characters); later sheets get " (2)", " (3)", …. */
  sheetName: string;
  header: string[];
  /** Columns whose integer values are written as numbers. */
  numericColumns: ReadonlySet<string>;
  /** Receives the file's bytes; return a promise to make the writer wait (back-pressure). */
  write(chunk: Uint8Array): void | Promise<void>;
}

/** Writes the header and rows as an .xlsx file, the header repeated at the top of every sheet. */
export async function writeXlsx(rows: AsyncIterable<string[]>, options: XlsxOptions): Promise<void> {
  const encoder = new TextEncoder();
  const pending: Uint8Array[] = [];
  let failure: unknown;
  const zip = new Zip((err, data) => {
    if (err) failure = err;
    else pending.push(data);
  });
  const drain = async () => {
    if (failure) throw failure;
    while (pending.length > 0) await options.write(pending.shift()!);
  };
  const addText = (name: string, text: string) => {
    const f = new ZipDeflate(name, { level: 6 });
    zip.add(f);
    f.push(encoder.encode(text), true);
  };

  const numeric = options.header.map((h) => options.numericColumns.has(h));
  const headerRow = `<row>${options.header.map((h) => cell(h, false)).join("")}</row>`;
  const names: string[] = [];
  let sheet: ZipDeflate | undefined;
  let rowsInSheet = 0;
  let buffer = "";
  const flush = async (final: boolean) => {
    sheet!.push(encoder.encode(buffer), final);
    buffer = "";
    await drain();
  };
  const openSheet = () => {
    const n = names.length + 1;
    names.push(n === 1 ? options.sheetName.slice(0, 31) : `${options.sheetName.slice(0, 25)} (${n})`);
    sheet = new ZipDeflate(`xl/worksheets/sheet${n}.xml`, { level: 1 });
    zip.add(sheet);
    buffer = SHEET_START + headerRow;
    rowsInSheet = 1;
  };

  openSheet();
  for await (const row of rows) {
    if (rowsInSheet === MAX_ROWS_PER_SHEET) {
      buffer += SHEET_END;
      await flush(true);
      openSheet();
    }
    buffer += "<row>";
    for (let i = 0; i < row.length; i++) buffer += cell(row[i] ?? "", numeric[i] ?? false);
    buffer += "</row>";
    rowsInSheet++;
    if (buffer.length > 64 * 1024) await flush(false);
  }
  buffer += SHEET_END;
  await flush(true);
  addText("[Content_Types].xml", CONTENT_TYPES(names.length));
  addText("_rels/.rels", ROOT_RELS);
  addText("xl/workbook.xml", WORKBOOK(names));
  addText("xl/_rels/workbook.xml.rels", WORKBOOK_RELS(names.length));
  addText("xl/styles.xml", STYLES);
  zip.end();
  await drain();
}
