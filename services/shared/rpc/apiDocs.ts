/**
 * Swagger UI and OpenAPI documents on a service's HTTP port:
 *
 * - `GET /openapi.json`: this service's document, whose `servers` entry is the URL the caller
 *   used, so "Try it out" calls this very service.
 * - `GET /docs`: Swagger UI (swagger-ui-dist) with every service in the catalog selectable; each
 *   entry loads its document from that service's own HTTP port.
 * - CORS for the pages of the catalog's other services, so a page served by one service can call
 *   the others. Other origins get no CORS headers, so browsers keep them out.
 *
 * A service alone knows only itself and the services PUBLIC_URLS names; the platform process
 * (npm start) links the catalogs of all three.
 */
import { createReadStream, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type * as http from "node:http";
import { CORS_ALLOWED_HEADERS, CORS_ALLOWED_METHODS, CORS_EXPOSED_HEADERS } from "./cors.js";
import type { OpenApiDocument } from "./openapi.js";
import type { HttpRoute } from "./server.js";

export interface ApiSpec {
  /** Short service name shown in the Swagger UI selector, e.g. "payment". */
  name: string;
  /** Base HTTP URL of the service's Connect endpoints, e.g. http://127.0.0.1:8081. */
  url: string;
  document: OpenApiDocument;
  /**
   * Request examples read from the service's data when the document is served (keyed by
   * `<package.Service>/<Method>`), so that "Try it out" finds what it asks for: the newest run,
   * an order that exists. Undefined (or a failure) keeps the document's own example.
   */
  liveExamples?: Readonly<Record<string, () => Promise<unknown>>>;
}

/** The document with the live examples filled in. */
async function withLiveExamples(spec: ApiSpec): Promise<OpenApiDocument> {
  const live = Object.entries(spec.liveExamples ?? {});
  if (live.length === 0) return spec.document;
  const paths = { ...spec.document.paths };
  await Promise.all(
    live.map(async ([key, read]) => {
      const path = `/${key}`;
      const op = paths[path]?.post;
      if (!op) return;
      const example = await read().catch(() => undefined);
      if (example === undefined) return;
      const media = op.requestBody.content["application/json"]!;
      paths[path] = { post: { ...op, requestBody: { ...op.requestBody, content: { "application/json": { ...media, example } } } } };
    }),
  );
  return { ...spec.document, paths };
}

/** A service the pages link to: its name and the origin of its HTTP port. */
export interface ApiEntry {
  name: string;
  url: string;
}

/**
 * The services one service's pages show: its own document, plus the others, either linked in by
 * the platform process (npm start) or configured by their public URLs (PUBLIC_URLS), whose
 * documents the browser loads from their own ports.
 */
export class ApiCatalog {
  private entries: ApiEntry[];
  private ownSpec: ApiSpec | undefined;

  /** publicUrls: name -> origin; this service's own entry, if there, is the URL it is advertised at. */
  constructor(
    readonly ownName: string,
    private readonly publicUrls: Readonly<Record<string, string>> = {},
  ) {
    this.entries = Object.entries(publicUrls).map(([name, url]) => ({ name, url }));
  }

  /** Adds this service's own document (or another's), keeping its place in the list. */
  add(spec: ApiSpec): void {
    const advertised = spec.name === this.ownName ? this.publicUrls[spec.name] : undefined;
    const entry = advertised ? { ...spec, url: advertised } : spec;
    if (entry.name === this.ownName) this.ownSpec = entry;
    const i = this.entries.findIndex((s) => s.name === entry.name);
    if (i >= 0) this.entries[i] = entry;
    else this.entries.push(entry);
  }

  list(): readonly ApiEntry[] {
    return this.entries;
  }

  own(): ApiSpec | undefined {
    return this.ownSpec;
  }

  /** Lists exactly these services, in this order (this service's own is kept if missing). */
  replaceAll(specs: readonly ApiEntry[]): void {
    const own = this.ownSpec;
    this.entries = own && !specs.some((s) => s.name === own.name) ? [own, ...specs] : [...specs];
  }
}

/** Makes every catalog list every service's own document, in the given order. */
export function linkApiCatalogs(catalogs: ApiCatalog[]): void {
  const owns = catalogs.map((c) => c.own()).filter((s): s is ApiSpec => s !== undefined);
  for (const catalog of catalogs) catalog.replaceAll(owns);
}

const swaggerDir = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
  "favicon-16x16.png": "image/png",
  "favicon-32x32.png": "image/png",
};

const HOST_HEADER = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/** The base URL the caller reached this server by, when its Host header is plausible. */
function requestBaseUrl(req: http.IncomingMessage, fallback: string): string {
  const host = req.headers.host;
  return host && HOST_HEADER.test(host) ? `http://${host}` : fallback;
}

function hostnameOf(hostHeader: string | undefined): string | undefined {
  if (!hostHeader || !HOST_HEADER.test(hostHeader)) return undefined;
  return new URL(`http://${hostHeader}`).hostname;
}

/**
 * An origin may call when it is one of the catalog's services, reached under the catalog's host
 * name or under the host name this request came in on (localhost rather than 127.0.0.1, say).
 */
function originAllowed(origin: string, req: http.IncomingMessage, catalog: ApiCatalog): boolean {
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return false;
  }
  const requestHost = hostnameOf(req.headers.host);
  return catalog.list().some((spec) => {
    const s = new URL(spec.url);
    if (o.origin === s.origin) return true;
    return o.protocol === s.protocol && o.port === s.port && requestHost !== undefined && o.hostname === requestHost;
  });
}

function sendJson(res: http.ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { "content-type": "application/json; charset=utf-8", "cache-control": "no-cache", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function indexPage(catalog: ApiCatalog): string {
  const own = catalog.own();
  const specs = catalog.list().map((s) => ({ name: s.name, url: s.url }));
  // Escaped so that no value can close the script element.
  const config = JSON.stringify({ specs, own: own?.name ?? "", ownUrl: own?.url ?? "" }).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>API — ${own?.document.info.title ?? "services"}</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  <style>html { box-sizing: border-box; overflow-y: scroll; } body { margin: 0; background: #fafafa; }</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    const config = ${config};
    // Services on the same host as this one are addressed by the host name the page was opened
    // with, so that localhost and 127.0.0.1 both work.
    const ownHost = config.ownUrl ? new URL(config.ownUrl).hostname : location.hostname;
    const urls = config.specs.map((spec) => {
      const u = new URL(spec.url);
      if (u.hostname === ownHost) u.hostname = location.hostname;
      return { name: spec.name, url: u.origin + "/openapi.json" };
    });
    window.ui = SwaggerUIBundle({
      urls,
      "urls.primaryName": config.own,
      dom_id: "#swagger-ui",
      deepLinking: true,
      displayRequestDuration: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      plugins: [SwaggerUIBundle.plugins.DownloadUrl],
      layout: "StandaloneLayout",
    });
  </script>
</body>
</html>
`;
}

/** The plain-HTTP routes of the docs: CORS, /openapi.json, /docs and its assets. */
export function docsRoutes(catalog: ApiCatalog): HttpRoute[] {
  const corsRoute: HttpRoute = (req, res) => {
    const origin = req.headers.origin;
    if (!origin || !originAllowed(origin, req, catalog)) return false;
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("vary", "Origin");
    res.setHeader("access-control-expose-headers", CORS_EXPOSED_HEADERS.join(", "));
    if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
      res.writeHead(204, {
        "access-control-allow-methods": CORS_ALLOWED_METHODS.join(", "),
        "access-control-allow-headers": CORS_ALLOWED_HEADERS.join(", "),
        "access-control-max-age": "7200",
      });
      res.end();
      return true;
    }
    return false; // the actual call goes on to its handler, with the headers above
  };

  const docsRoute: HttpRoute = (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/openapi.json") {
      const own = catalog.own();
      if (!own) return false;
      void withLiveExamples(own).then((document) =>
        sendJson(res, { ...document, servers: [{ url: requestBaseUrl(req, own.url), description: own.name }] }),
      );
      return true;
    }
    if (path === "/docs") {
      const query = (req.url ?? "").slice(path.length);
      res.writeHead(302, { location: `/docs/${query}` });
      res.end();
      return true;
    }
    if (path === "/docs/" || path === "/docs/index.html") {
      const html = indexPage(catalog);
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache", "content-length": Buffer.byteLength(html) });
      res.end(html);
      return true;
    }
    if (path.startsWith("/docs/")) {
      const name = path.slice("/docs/".length);
      const type = ASSETS[name];
      if (!type) return false;
      const file = join(swaggerDir, name);
      res.writeHead(200, { "content-type": type, "content-length": statSync(file).size, "cache-control": "public, max-age=3600" });
      if (req.method === "HEAD") res.end();
      else createReadStream(file).pipe(res);
      return true;
    }
    return false;
  };

  return [corsRoute, docsRoute];
}
