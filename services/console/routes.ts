/**
 * The operations console on a service's HTTP port:
 *
 * - `GET /`: the page; `/console/app.js` (the browser app, bundled by esbuild from
 *   services/console/app/ the first time it is asked for, then kept in memory) and
 *   `/console/app.css`.
 * - `GET /console/config.json`: the services the page talks to (the same catalog as /docs:
 *   with `npm start` all three) and the business time zone.
 * - On the reconciliation service only, `GET /console/runs/<run_id>/files/<name>`: a run's file
 *   as stored (CSV), or with `?format=xlsx` as a spreadsheet in which every id keeps its digits
 *   and no cell is a formula (xlsx.ts).
 *
 * The page calls the services through their Connect endpoints (with the CORS the docs routes
 * grant the catalog's origins). Its Content-Security-Policy allows no inline script and no
 * script from anywhere but this port.
 */
import { createReadStream, existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type * as http from "node:http";
import type { ApiCatalog } from "../shared/rpc/apiDocs.js";
import type { HttpRoute } from "../shared/rpc/server.js";
import type { Logger } from "../shared/observability/logger.js";
import type { RunStore } from "../recon/runs.js";
import { csvRecordsFrom } from "../recon/csvOffsets.js";
import { writeXlsx } from "./xlsx.js";

const here = dirname(fileURLToPath(import.meta.url));
const APP_ENTRY = join(here, "app", "main.ts");
/** index.html and app.css; scripts/build.ts copies them next to the compiled routes. */
const STATIC_DIR = join(here, "static");

/** Columns whose integer values are amounts or counts: numbers in the spreadsheet. */
const NUMERIC_COLUMNS = new Set(["total_fee", "withdraw_money", "refund_fee", "amount", "merchant_amount", "payment_amount", "balance", "audit_amount", "pending", "pending_count"]);
const FILE_NAME = /^[a-z0-9_]{1,64}\.csv$/;
const RUN_FILE_PATH = /^\/console\/runs\/([0-9a-z-]{1,64})\/files\/([^/?]{1,80})$/;

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  // The other services of the catalog are on other ports (or hosts).
  "connect-src 'self' http: https:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The app as bundled by scripts/build.ts into a compiled tree (dist/), where no TypeScript is. */
const PREBUILT = join(here, "console-app.js");

let bundle: Promise<string> | undefined;

/** The esbuild options of the browser app's bundle (also used by scripts/build.ts). */
export const CONSOLE_BUNDLE_OPTIONS = {
  entryPoints: [APP_ENTRY],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  legalComments: "none",
  logLevel: "silent",
} as const;

/** The browser app: the prebuilt bundle when there is one, else bundled once per process. */
export function consoleBundle(): Promise<string> {
  bundle ??= (async () => {
    if (existsSync(PREBUILT)) return readFile(PREBUILT, "utf8");
    const esbuild = await import("esbuild");
    const result = await esbuild.build({
      ...CONSOLE_BUNDLE_OPTIONS,
      entryPoints: [...CONSOLE_BUNDLE_OPTIONS.entryPoints],
      target: [...CONSOLE_BUNDLE_OPTIONS.target],
      write: false,
    });
    return result.outputFiles[0]!.text;
  })();
  bundle.catch(() => {
    bundle = undefined;
  });
  return bundle;
}

export interface ConsoleOptions {
  catalog: ApiCatalog;
  timeZone: string;
  logger: Logger;
  /** The reconciliation service's runs: serves their files. */
  runs?: RunStore | undefined;
  /** The reconciliation service's RECON_CUTOFF_LAG_SECONDS, which "reconcile now" waits out. */
  cutoffLagSeconds?: number | undefined;
}

function send(res: http.ServerResponse, status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": String(Buffer.byteLength(body)),
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    ...extra,
  });
  res.end(body);
}

function notFound(res: http.ServerResponse, message: string): void {
  send(res, 404, "text/plain; charset=utf-8", message + "\n");
}

async function write(res: http.ServerResponse, chunk: Uint8Array | string): Promise<void> {
  if (res.destroyed) throw new Error("the client went away");
  if (!res.write(chunk)) {
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        res.off("drain", done);
        res.off("close", gone);
        resolve();
      };
      const gone = () => {
        res.off("drain", done);
        reject(new Error("the client went away"));
      };
      res.on("drain", done);
      res.on("close", gone);
    });
  }
}

async function* dataRows(path: string, signal: AbortSignal): AsyncGenerator<string[]> {
  let header = true;
  for await (const r of csvRecordsFrom(path, 0, signal)) {
    if (header) {
      header = false;
      continue;
    }
    if (r.fields.length === 1 && r.fields[0] === "") continue;
    yield r.fields;
  }
}

async function serveRunFile(options: ConsoleOptions, req: http.IncomingMessage, res: http.ServerResponse, runId: string, name: string, format: string): Promise<void> {
  const run = await options.runs!.get(runId);
  if (!run) return notFound(res, `no run ${runId}`);
  if (!FILE_NAME.test(name) || !run.files.some((f) => f.name === name)) return notFound(res, `run ${runId} has no file ${name}`);
  const path = join(run.directory, name);
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) return notFound(res, `run ${runId} has no file ${name}`);
  const base = `${runId}_${name.slice(0, -".csv".length)}`;
  if (format === "") {
    res.writeHead(200, {
      "content-type": "text/csv; charset=utf-8",
      "content-length": String(info.size),
      "content-disposition": `attachment; filename="${base}.csv"`,
      "x-content-type-options": "nosniff",
    });
    if (req.method === "HEAD") return void res.end();
    createReadStream(path).pipe(res);
    return;
  }
  // The spreadsheet flavour.
  let header: string[] | undefined;
  for await (const r of csvRecordsFrom(path, 0)) {
    header = r.fields;
    break;
  }
  res.writeHead(200, {
    "content-type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "content-disposition": `attachment; filename="${base}.xlsx"`,
    "x-content-type-options": "nosniff",
  });
  if (req.method === "HEAD") return void res.end();
  const abort = new AbortController();
  res.once("close", () => abort.abort());
  await writeXlsx(dataRows(path, abort.signal), {
    sheetName: name.slice(0, -".csv".length),
    header: header ?? [],
    numericColumns: NUMERIC_COLUMNS,
    write: (chunk) => write(res, chunk),
  });
  res.end();
}

/** The console's plain-HTTP routes. */
export function consoleRoutes(options: ConsoleOptions): HttpRoute[] {
  const route: HttpRoute = (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const url = new URL(req.url ?? "/", "http://console.invalid");
    const path = url.pathname;
    const fail = (err: unknown) => {
      options.logger.error({ err, path }, "console request failed");
      if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n");
      else res.destroy();
    };
    if (path === "/" || path === "/index.html") {
      readFile(join(STATIC_DIR, "index.html"))
        .then((html) => send(res, 200, "text/html; charset=utf-8", html, { "content-security-policy": CSP, "x-frame-options": "DENY", "referrer-policy": "no-referrer" }))
        .catch(fail);
      return true;
    }
    if (path === "/console/app.css") {
      readFile(join(STATIC_DIR, "app.css"))
        .then((css) => send(res, 200, "text/css; charset=utf-8", css))
        .catch(fail);
      return true;
    }
    if (path === "/console/app.js") {
      consoleBundle()
        .then((js) => send(res, 200, "text/javascript; charset=utf-8", js))
        .catch(fail);
      return true;
    }
    if (path === "/console/config.json") {
      const own = options.catalog.own();
      const body = JSON.stringify({
        own: own?.name ?? "",
        ownUrl: own?.url ?? "",
        services: options.catalog.list().map((s) => ({ name: s.name, url: s.url })),
        timeZone: options.timeZone,
        ...(options.cutoffLagSeconds === undefined ? {} : { cutoffLagSeconds: options.cutoffLagSeconds }),
      });
      send(res, 200, "application/json; charset=utf-8", body);
      return true;
    }
    const file = RUN_FILE_PATH.exec(path);
    if (file && options.runs) {
      const format = url.searchParams.get("format") ?? "";
      if (format !== "" && format !== "xlsx") {
        send(res, 400, "text/plain; charset=utf-8", "format: must be xlsx or absent\n");
        return true;
      }
      serveRunFile(options, req, res, file[1]!, file[2]!, format).catch(fail);
      return true;
    }
    return false;
  };
  return [route];
}
