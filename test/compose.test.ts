/**
 * docker-compose.yml, checked without Docker: it parses, MySQL 8 and Redis 7 have healthchecks,
 * each service waits for what it needs to be healthy, runs its own entry point from the image the
 * Dockerfile builds, sets only variables its configuration reader knows, and its configuration
 * read from exactly that environment listens on the published ports and reaches the others.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "chai";
import { load } from "js-yaml";
import { EnvReader } from "../services/shared/runtime/config.js";
import { readPaymentConfig } from "../services/payment/config.js";
import { readMerchantConfig } from "../services/merchant/config.js";
import { readReconConfig } from "../services/recon/config.js";
import { FLAGGED_SERVICES, SERVICE_NODE_FLAGS } from "../services/shared/runtime/nodeFlags.js";
import { REPO_ROOT } from "./support/paths.js";

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string | number>;
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

/** Every variable a reader looks at, found by handing it an environment that records reads. */
function variablesReadBy(read: (env: EnvReader) => unknown): Set<string> {
  const seen = new Set<string>();
  const recording = new Proxy({} as NodeJS.ProcessEnv, {
    get(_target, name) {
      if (typeof name === "string") seen.add(name);
      return undefined;
    },
  });
  read(new EnvReader(recording));
  return seen;
}

/** Read outside the configuration readers: services/shared/observability/logger.ts. */
const PROCESS_VARIABLES = ["LOG_LEVEL"];

const APPS = {
  payment: { read: readPaymentConfig, entry: "services/payment/main.ts" },
  merchant: { read: readMerchantConfig, entry: "services/merchant/main.ts" },
  recon: { read: readReconConfig, entry: "services/recon/main.ts" },
} as const;

function environmentOf(s: ComposeService): Record<string, string> {
  return Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
}

function publishedPorts(s: ComposeService): number[] {
  return (s.ports ?? []).map((p) => {
    const [host, container] = p.split(":");
    expect(host, `${p} publishes the same port`).to.equal(container);
    return Number(container);
  });
}

describe("docker-compose.yml", () => {
  let services: Record<string, ComposeService>;
  before(() => {
    const doc = load(readFileSync(join(REPO_ROOT, "docker-compose.yml"), "utf8")) as { services: Record<string, ComposeService> };
    services = doc.services;
  });

  it("runs MySQL 8 and Redis 7 with healthchecks", () => {
    expect(services.mysql?.image).to.match(/^mysql:8(\.|$)/);
    expect(services.mysql?.healthcheck?.test.join(" ")).to.contain("mysqladmin ping");
    expect(services.redis?.image).to.match(/^redis:7(\.|$)/);
    expect(services.redis?.healthcheck?.test.join(" ")).to.contain("redis-cli ping");
  });

  it("builds a slim, non-root image of production dependencies and compiled JavaScript, with a health check", () => {
    const dockerfile = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8");
    const stages = dockerfile.split(/^FROM /m).slice(1);
    expect(stages).to.have.length(2);
    const [build, runtime] = stages as [string, string];
    expect(build).to.match(/^node:20-slim AS build/);
    expect(build).to.match(/^RUN npm ci/m);
    expect(build).to.match(/^RUN npm run build$/m);
    expect(runtime).to.match(/^node:20-slim\n/);
    expect(runtime).to.match(/^RUN npm ci --omit=dev/m);
    // Only the compiled output comes from the build stage, never its node_modules.
    const copied = [...runtime.matchAll(/^COPY --from=build (\S+)/gm)].map((m) => m[1]);
    expect(copied).to.deep.equal(["/app/dist"]);
    expect(runtime).to.match(/^USER node$/m);
    expect(runtime).to.not.contain("tsx");
    const health = /^HEALTHCHECK .*CMD \["node", "([^"]+)"\]$/m.exec(runtime);
    expect(health?.[1]).to.equal("dist/services/healthcheck.js");
    expect(existsSync(join(REPO_ROOT, "services/healthcheck.ts"))).to.equal(true);
    const cmd = /^CMD (\[.*\])$/m.exec(runtime);
    expect(JSON.parse(cmd?.[1] ?? "[]")).to.deep.equal(["node", ...SERVICE_NODE_FLAGS, "dist/services/main.js"]);
    expect(JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")).scripts.build).to.equal("tsx scripts/build.ts");
    const ignored = readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8").split("\n");
    expect(ignored).to.include.members(["node_modules", ".git", "data", "dist"]);
  });

  it("starts the merchant and payment systems with the same Node.js flags in package.json's scripts (nodeFlags.ts)", () => {
    const scripts = (JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
    const flags = SERVICE_NODE_FLAGS.join(" ");
    expect(scripts.start).to.equal(`node ${flags} --import tsx services/main.ts`);
    for (const name of Object.keys(APPS)) {
      const expected = FLAGGED_SERVICES.includes(name) ? `node ${flags} --import tsx services/${name}/main.ts` : `node --import tsx services/${name}/main.ts`;
      expect(scripts[`start:${name}`], `start:${name}`).to.equal(expected);
    }
  });

  it("mounts the reconciliation directory only where it is written (recon)", () => {
    const mounts = (name: string) => ((services[name] as { volumes?: string[] }).volumes ?? []).filter((v) => v.startsWith("reconciliation:"));
    expect(mounts("recon")).to.deep.equal(["reconciliation:/app/data/reconciliation"]);
    expect(mounts("payment")).to.deep.equal([]);
    expect(mounts("merchant")).to.deep.equal([]);
  });

  for (const [name, app] of Object.entries(APPS)) {
    describe(name, () => {
      const service = () => services[name]!;

      it("is built from the Dockerfile and runs its own entry point, compiled", () => {
        expect(service().build).to.equal(".");
        const command = service().command ?? [];
        const flags = FLAGGED_SERVICES.includes(name) ? SERVICE_NODE_FLAGS : [];
        expect(command).to.deep.equal(["node", ...flags, `dist/${app.entry.replace(/\.ts$/, ".js")}`]);
        expect(existsSync(join(REPO_ROOT, app.entry)), app.entry).to.equal(true);
      });

      it("sets only variables its configuration reader knows", () => {
        const known = new Set([...variablesReadBy(app.read), ...PROCESS_VARIABLES]);
        const unknown = Object.keys(environmentOf(service())).filter((v) => !known.has(v));
        expect(unknown, `not read by ${name}'s configuration`).to.deep.equal([]);
      });

      it("has a configuration that reads cleanly, listens on every interface on the published ports", () => {
        const config = app.read(new EnvReader(environmentOf(service())));
        expect(config.listen.host).to.equal("0.0.0.0");
        expect(publishedPorts(service()).sort()).to.deep.equal([config.listen.grpcPort, config.listen.httpPort].sort());
        expect(service().healthcheck?.test.join(" ")).to.contain(`127.0.0.1:${config.listen.httpPort}/healthz`);
      });
    });
  }

  it("puts the payment system on MySQL and Redis, after both are healthy", () => {
    const s = services.payment!;
    const config = readPaymentConfig(new EnvReader(environmentOf(s)));
    expect(new URL(config.database.mysqlUrl!).host).to.equal("mysql:3306");
    expect(new URL(config.database.mysqlUrl!).pathname).to.equal("/payment");
    expect(new URL(config.redisUrl!).host).to.equal("redis:6379");
    expect(s.depends_on).to.deep.equal({ mysql: { condition: "service_healthy" }, redis: { condition: "service_healthy" } });
  });

  it("puts the merchant system on its own MySQL database, calling the payment system once it is healthy", () => {
    const s = services.merchant!;
    const config = readMerchantConfig(new EnvReader(environmentOf(s)));
    const payment = readPaymentConfig(new EnvReader(environmentOf(services.payment!)));
    expect(new URL(config.database.mysqlUrl!).host).to.equal("mysql:3306");
    expect(new URL(config.database.mysqlUrl!).pathname).to.equal("/merchant");
    expect(config.paymentAddress).to.equal(`payment:${payment.listen.grpcPort}`);
    expect(s.depends_on).to.deep.equal({ mysql: { condition: "service_healthy" }, payment: { condition: "service_healthy" } });
  });

  it("points the reconciliation system at both others' gRPC ports, once both are healthy", () => {
    const s = services.recon!;
    const config = readReconConfig(new EnvReader(environmentOf(s)));
    const payment = readPaymentConfig(new EnvReader(environmentOf(services.payment!)));
    const merchant = readMerchantConfig(new EnvReader(environmentOf(services.merchant!)));
    expect(config.paymentAddress).to.equal(`payment:${payment.listen.grpcPort}`);
    expect(config.merchantAddress).to.equal(`merchant:${merchant.listen.grpcPort}`);
    expect(s.depends_on).to.deep.equal({ payment: { condition: "service_healthy" }, merchant: { condition: "service_healthy" } });
  });

  it("gives every service's pages (console, /docs) the others' published HTTP ports", () => {
    const readers = { payment: readPaymentConfig, merchant: readMerchantConfig, recon: readReconConfig } as const;
    const expected = Object.fromEntries(
      Object.entries(readers).map(([name, read]) => [name, `http://localhost:${read(new EnvReader(environmentOf(services[name]!))).listen.httpPort}`]),
    );
    for (const [name, read] of Object.entries(readers)) {
      const config = read(new EnvReader(environmentOf(services[name]!)));
      expect(config.serving?.publicUrls, name).to.deep.equal(expected);
    }
    expect(Object.keys(expected)).to.deep.equal(["payment", "merchant", "recon"]);
  });
});
