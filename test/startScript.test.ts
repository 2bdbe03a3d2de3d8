/**
 * `npm start` runs the platform so that a SIGTERM reaches the service itself, also when the
 * service cannot run for a moment (a loaded machine, a GC pause): the command in package.json is
 * started as npm starts it, the service process is stopped (SIGSTOP), SIGTERM goes to the
 * started process, and 300 ms later the service continues. It must then drain and exit 0.
 * Through a relaying launcher (the `tsx` command) the service was SIGKILLed instead, because it
 * had not acknowledged the signal within the launcher's 60 ms.
 *
 * Only on the embedded default: how the process is started does not depend on the backends.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { expect } from "chai";
import { REPO_ROOT } from "./support/paths.js";
import { freePort } from "./support/ports.js";

/** The `start` script of package.json as a command line runnable from any directory. */
function startCommand(): { command: string; args: string[] } {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
  const [command, ...args] = pkg.scripts.start!.split(/\s+/);
  const absolute = args.map((a) => (a.startsWith("services/") ? join(REPO_ROOT, a) : a));
  if (command === "node") {
    // `--import tsx` resolves from the working directory; name the loader by location instead.
    const loader = pathToFileURL(createRequire(join(REPO_ROOT, "package.json")).resolve("tsx")).href;
    return { command: process.execPath, args: absolute.map((a, i) => (a === "tsx" && absolute[i - 1] === "--import" ? loader : a)) };
  }
  return { command: join(REPO_ROOT, "node_modules", ".bin", command!), args: absolute };
}

/** The process that runs services/main.ts: the started one or, behind a launcher, its descendant. */
function serviceProcess(root: number): number {
  const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  const children = (pid: number) =>
    readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  let pid = root;
  for (;;) {
    const next = children(pid).find((c) => cmdline(c).some((a) => a.endsWith("services/main.ts")));
    if (next === undefined) return pid;
    pid = next;
  }
}

describe("npm start and signals", function () {
  this.timeout(120_000);
  let dir: string;
  let child: ChildProcess | undefined;
  before(() => (dir = mkdtempSync(join(tmpdir(), "start-script-"))));
  after(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("drains and exits 0 on SIGTERM although the service could not run for 300 ms when it arrived", async () => {
    const ports = await Promise.all(Array.from({ length: 6 }, freePort));
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const name of ["MYSQL_URL", "REDIS_URL", "PAYMENT_MYSQL_URL", "MERCHANT_MYSQL_URL", "PAYMENT_ADDRESS", "MERCHANT_ADDRESS", "HOST"]) delete env[name];
    const names = ["PAYMENT_GRPC_PORT", "PAYMENT_HTTP_PORT", "MERCHANT_GRPC_PORT", "MERCHANT_HTTP_PORT", "RECON_GRPC_PORT", "RECON_HTTP_PORT"];
    names.forEach((name, i) => (env[name] = String(ports[i])));
    Object.assign(env, {
      LOG_LEVEL: "info",
      PAYMENT_SQLITE_FILE: join(dir, "payment.sqlite"),
      MERCHANT_SQLITE_FILE: join(dir, "merchant.sqlite"),
      RECON_DIR: join(dir, "reconciliation"),
    });
    const { command, args } = startCommand();
    const proc = spawn(command, args, { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    let output = "";
    proc.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    proc.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));

    // Up: every HTTP port answers, and the start-up banner (printed last) is out.
    for (const port of [ports[1], ports[3], ports[5]]) {
      for (;;) {
        if (proc.exitCode !== null) throw new Error(`the platform exited (${proc.exitCode}): ${output}`);
        if (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    while (!output.includes("Stop with Ctrl-C.")) await new Promise((r) => setTimeout(r, 50));

    const service = serviceProcess(proc.pid!);
    process.kill(service, "SIGSTOP");
    proc.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    try {
      process.kill(service, "SIGCONT");
    } catch {
      // already gone: the exit below says how
    }
    const end = await exited;
    expect(end, output).to.deep.equal({ code: 0, signal: null });
    expect(output).to.contain("draining and stopping");
  });
});
