/**
 * The compiled build the Docker image runs (scripts/build.ts): every source compiles, the output
 * imports nothing but Node's modules, its own files and production dependencies, and
 * `node dist/services/main.js` starts the platform without tsx and answers /healthz, which the
 * image's health check (dist/services/healthcheck.js) then reports healthy.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect } from "chai";
import { REPO_ROOT } from "./support/paths.js";

const run = promisify(execFile);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
}

/** The package a bare import specifier names ("@scope/name/sub" -> "@scope/name"). */
function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

describe("compiled build (Docker image)", function () {
  // Inside the repository, so that the output resolves node_modules as dist/ does in the image.
  const out = join(REPO_ROOT, ".tmp", `dist-test-${process.pid}`);
  let work: string;
  before(async () => {
    await run(join(REPO_ROOT, "node_modules", ".bin", "tsx"), [join(REPO_ROOT, "scripts", "build.ts"), out], { cwd: REPO_ROOT });
    work = mkdtempSync(join(tmpdir(), "build-"));
  });
  after(() => {
    rmSync(out, { recursive: true, force: true });
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("imports only Node's modules, its own files and production dependencies", () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const production = new Set(Object.keys(pkg.dependencies));
    const builtins = new Set(builtinModules);
    const outside = new Set<string>();
    const compiled = files(out).filter((f) => f.endsWith(".js"));
    expect(compiled.length).to.be.greaterThan(50);
    for (const file of compiled) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\("([^"]+)"\)|^import\s+"([^"]+)"/gm)) {
        const spec = m[1] ?? m[2] ?? m[3]!;
        if (spec.startsWith(".") || spec.startsWith("node:") || builtins.has(spec)) {
          if (spec.startsWith(".")) expect(existsSync(join(file, "..", spec)), `${file} imports ${spec}`).to.equal(true);
          continue;
        }
        if (!production.has(packageOf(spec))) outside.add(`${packageOf(spec)} (${file.slice(out.length + 1)})`);
      }
    }
    expect([...outside]).to.deep.equal([]);
  });

  it("starts with plain node, answers /healthz, and the image's health check says healthy", async () => {
    const ports = { PAYMENT_HTTP_PORT: "0", MERCHANT_HTTP_PORT: "0", RECON_HTTP_PORT: "0", PAYMENT_GRPC_PORT: "0", MERCHANT_GRPC_PORT: "0", RECON_GRPC_PORT: "0" };
    const child = spawn(process.execPath, [join(out, "services", "main.js")], {
      cwd: work,
      env: { ...process.env, ...ports, SETTLE_CRON: "off", RESOLVE_CRON: "off", LOG_LEVEL: "warn", NODE_OPTIONS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    try {
      const until = Date.now() + 30_000;
      while (!/Stop with Ctrl-C/.test(stdout)) {
        if (child.exitCode !== null || Date.now() > until) throw new Error(`did not start: ${stdout}\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const urls = [...stdout.matchAll(/http:\/\/127\.0\.0\.1:(\d+)\s*$/gm)].map((m) => m[1]!);
      expect(urls).to.have.length(3);
      const res = await fetch(`http://127.0.0.1:${urls[0]}/healthz`);
      expect(res.status).to.equal(200);
      const env = { ...process.env, PAYMENT_HTTP_PORT: urls[0]!, MERCHANT_HTTP_PORT: urls[1]!, RECON_HTTP_PORT: urls[2]!, NODE_OPTIONS: "" };
      await run(process.execPath, [join(out, "services", "healthcheck.js")], { env });
    } finally {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    expect(child.exitCode, stderr).to.equal(0);
    // With nothing listening, the health check fails.
    const closed = await run(process.execPath, [join(out, "services", "healthcheck.js")], {
      env: { ...process.env, HEALTHCHECK_URL: `http://127.0.0.1:1/healthz`, NODE_OPTIONS: "" },
    }).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    expect(closed).to.equal(1);
  });

  it("bundles paycli into one file that runs with plain node", async () => {
    const help = await run(process.execPath, [join(out, "paycli.mjs"), "simulate", "--help"], { env: { ...process.env, NODE_OPTIONS: "" } });
    expect(help.stdout).to.match(/^Usage: paycli simulate/m);
    const usage = await run(process.execPath, [join(out, "paycli.mjs"), "simulate", "--count", "-3"], { env: { ...process.env, NODE_OPTIONS: "" } }).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(usage.code).to.equal(2);
    expect(usage.stderr).to.contain("'--count <n>' argument '-3' is invalid");
  });
});
