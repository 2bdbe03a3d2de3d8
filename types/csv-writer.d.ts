// csv-writer publishes its TypeScript sources as its types, which do not compile under this
// project's settings (verbatimModuleSyntax); these declarations cover the part the platform uses.
declare module "csv-writer/dist/index.js" {
  export interface ArrayCsvStringifier {
    getHeaderString(): string | null;
    stringifyRecords(records: ReadonlyArray<ReadonlyArray<unknown>>): string;
  }
  export function createArrayCsvStringifier(params: {
    header?: string[];
    fieldDelimiter?: string;
    recordDelimiter?: string;
    alwaysQuote?: boolean;
  }): ArrayCsvStringifier;
}
