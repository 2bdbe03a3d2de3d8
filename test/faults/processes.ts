/**
 * Real processes for the crash and restart suites: the payment, merchant and reconciliation
 * services (`node --import tsx services/<name>/main.ts`), a private redis-server and a private
 * mariadbd, each on a free loopback port, started, stopped and killed with SIGKILL by process id.
 *
 * Every process records how it ended. An exit the test did not cause (a crash) is kept with the
 * tail of the process's output, so a suite can fail on it and show why.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { REPO_ROOT } from "../support/paths.js";

import { freePort } from "../support/ports.js";

export { freePort };

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The environment a child starts from: no inherited service configuration. */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ"]) if (process.env[k] !== undefined) env[k] = process.env[k];
  return env;
}

export interface UnexpectedExit {
  process: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

const OUTPUT_KEPT = 16 * 1024;

/**
 * One restartable child process. `start` resolves once the process printed its ready line;
 * `kill` sends SIGKILL and waits for the exit; any other exit while running is a crash.
 */
export class ManagedProcess {
  private child: ChildProcess | undefined;
  private output = "";
  private expectingExit = false;
  private exited: Promise<void> = Promise.resolve();
  readonly crashes: UnexpectedExit[] = [];
  starts = 0;
  kills = 0;
  /** The current process printed its ready line. */
  ready = false;

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv,
    private readonly readyLine: RegExp,
    private readonly options: { cwd?: string; startTimeoutMs?: number } = {},
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines the process wrote (stdout and stderr together). */
  tail(chars = 4000): string {
    return this.output.slice(-chars);
  }

  /** Spawns the process; resolves when it is ready, rejects if it ends or stalls first. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.output = "";
    this.expectingExit = false;
    this.starts++;
    const child = spawn(this.command, this.args, {
      cwd: this.options.cwd ?? REPO_ROOT,
      env: { ...baseEnv(), ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    this.ready = false;
    let readySeen = false;
    let onReady: () => void = () => {};
    const readyPromise = new Promise<void>((resolve) => (onReady = resolve));
    const collect = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString("utf8")).slice(-OUTPUT_KEPT * 2);
      if (!readySeen && this.readyLine.test(this.output)) {
        readySeen = true;
        this.ready = true;
        onReady();
      }
    };
    child.stdout!.on("data", collect);
    child.stderr!.on("data", collect);
    this.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        if (!this.expectingExit) {
          this.crashes.push({ process: this.name, code, signal, output: this.tail(OUTPUT_KEPT) });
        }
        resolve();
      });
    });
    const timeoutMs = this.options.startTimeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      readyPromise.then(() => "ready" as const),
      this.exited.then(() => "exited" as const),
      new Promise<"stalled">((resolve) => (timer = setTimeout(() => resolve("stalled"), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (outcome !== "ready") {
      if (outcome === "stalled") await this.kill();
      throw new Error(`${this.name} ${outcome === "stalled" ? `was not ready within ${timeoutMs} ms` : "exited during start-up"}:\n${this.tail()}`);
    }
  }

  /** Spawns without waiting for readiness (to kill it during start-up). */
  spawnDetached(): Promise<void> {
    const started = this.start();
    // A start-up cut short by `kill` rejects; the caller learns of it through `running`.
    started.catch(() => {});
    return started;
  }

  /** SIGKILL by process id, then waits for the exit. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.expectingExit = true;
    this.kills++;
    child.kill("SIGKILL");
    await this.exited;
  }

  /** SIGSTOP: the process stalls as in a long pause, holding whatever it had in hand. */
  pause(): void {
    if (this.child && this.running) this.child.kill("SIGSTOP");
  }

  /** SIGCONT: a paused process carries on where it stopped. */
  resume(): void {
    if (this.child && this.running) this.child.kill("SIGCONT");
  }

  /** SIGTERM (graceful stop), SIGKILL if it has not ended after graceMs. */
  async stop(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    this.expectingExit = true;
    // A paused process would not see the SIGTERM.
    child.kill("SIGCONT");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export type ServiceName = "payment" | "merchant" | "recon";

const READY_LINE: Record<ServiceName, RegExp> = {
  payment: /"msg":"payment system listening"/,
  merchant: /"msg":"merchant system listening"/,
  recon: /"msg":"reconciliation system listening"/,
};

/** One of the services as its own process, configured by environment variables. */
export function serviceProcess(name: ServiceName, env: Record<string, string>): ManagedProcess {
  return new ManagedProcess(
    name,
    process.execPath,
    ["--import", "tsx", `services/${name}/main.ts`],
    // Info level: the ready line is an info line.
    { LOG_LEVEL: "info", ...env },
    READY_LINE[name],
  );
}

/** A redis-server of its own that keeps nothing on disk: after a kill its data is gone. */
export class PrivateRedis {
  readonly process: ManagedProcess;

  private constructor(readonly port: number) {
    this.process = new ManagedProcess(
      "redis-server",
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"],
      {},
      /Ready to accept connections/,
      { cwd: tmpdir(), startTimeoutMs: 20_000 },
    );
  }

  static available(): boolean {
    return spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
  }

  static async start(): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort());
    await redis.process.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** SIGKILL; the data held in memory is lost. */
  kill(): Promise<void> {
    return this.process.kill();
  }

  restart(): Promise<void> {
    return this.process.start();
  }

  async close(): Promise<void> {
    await this.process.kill();
  }
}

/**
 * A mariadbd of its own, with its own data directory, no grant checks and no binary log, on a
 * free port. SIGKILL leaves what InnoDB had written; the restart runs crash recovery.
 */
export class PrivateMariaDb {
  readonly process: ManagedProcess;

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {
    this.process = new ManagedProcess(
      "mariadbd",
      "mariadbd",
      [
        "--no-defaults",
        `--datadir=${join(dir, "data")}`,
        `--socket=${join(dir, "mysqld.sock")}`,
        `--pid-file=${join(dir, "mysqld.pid")}`,
        `--port=${port}`,
        "--bind-address=127.0.0.1",
        "--user=root",
        "--skip-grant-tables",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=64M",
        "--innodb-log-file-size=32M",
        "--max-connections=500",
      ],
      {},
      /ready for connections/,
      { cwd: dir, startTimeoutMs: 60_000 },
    );
  }

  /** Why a private server cannot run here, or undefined when the binaries are present. */
  static unavailableReason(): string | undefined {
    for (const bin of ["mariadbd", "mariadb-install-db"]) {
      const r = spawnSync("sh", ["-c", `command -v ${bin} || test -x /usr/sbin/${bin}`], { stdio: "ignore" });
      if (r.status !== 0) return `${bin} is not installed`;
    }
    return undefined;
  }

  static async start(): Promise<PrivateMariaDb> {
    const dir = mkdtempSync(join(tmpdir(), "fault-mariadb-"));
    const install = spawnSync(
      "mariadb-install-db",
      ["--no-defaults", "--user=root", `--datadir=${join(dir, "data")}`, "--auth-root-authentication-method=normal", "--skip-test-db"],
      { cwd: dir, encoding: "utf8", env: { ...baseEnv(), PATH: `${process.env.PATH ?? ""}:/usr/sbin:/usr/bin` } },
    );
    if (install.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`mariadb-install-db failed (${install.status}): ${install.stderr || install.stdout}`);
    }
    const db = new PrivateMariaDb(await freePort(), dir);
    try {
      await db.process.start();
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return db;
  }

  /** mysql:// URL of the server (no database). */
  get url(): string {
    return `mysql://root@127.0.0.1:${this.port}/`;
  }

  kill(): Promise<void> {
    return this.process.kill();
  }

  restart(): Promise<void> {
    return this.process.start();
  }

  async close(): Promise<void> {
    await this.process.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A database name on a server URL. */
export function databaseUrl(serverUrl: string, name: string): string {
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * Kills every connection to the given databases on a shared server (KILL by processlist id):
 * what the services see when the server restarts, without restarting a server others use.
 * Returns how many connections were killed.
 */
export async function killConnections(serverUrl: string, names: string[]): Promise<number> {
  const server = new URL(serverUrl);
  server.pathname = "/";
  const conn = await mysql.createConnection(server.toString());
  try {
    const [rows] = (await conn.query("SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB IN (?) AND ID <> CONNECTION_ID()", [
      names,
    ])) as unknown as [{ id: number }[]];
    let killed = 0;
    for (const { id } of rows) {
      try {
        await conn.query(`KILL CONNECTION ${Number(id)}`);
        killed++;
      } catch {
        // Ended on its own meanwhile.
      }
    }
    return killed;
  } finally {
    await conn.end();
  }
}

