/**
 * Distributed engines on loopback for the cluster suites: a Redis Cluster of redis-server
 * processes and a MariaDB Galera cluster of mariadbd processes, each node with its own temporary
 * directory and free ports, started by the test and removed by it. Nodes are ManagedProcesses:
 * killed with SIGKILL by process id, and an exit the test did not cause is kept as a crash.
 */
import { spawn, spawnSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { Redis } from "ioredis";
import { freePort, ManagedProcess, sleep } from "../faults/processes.js";

function run(command: string, args: string[], timeoutMs: number): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (status) => {
      clearTimeout(timer);
      resolve({ status, output });
    });
  });
}

async function waitFor(what: string, withinMs: number, check: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + withinMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`${what} not within ${withinMs} ms${last instanceof Error ? `: ${last.message}` : ""}`);
}

// ---------------------------------------------------------------------------------------------
// Redis Cluster

export interface RedisNode {
  port: number;
  busPort: number;
  dir: string;
  process: ManagedProcess;
}

/** 3 masters with one replica each (by default), every node a redis-server of its own. */
export class LocalRedisCluster {
  private constructor(readonly nodes: RedisNode[]) {}

  static available(): boolean {
    return spawnSync("redis-cli", ["--version"], { stdio: "ignore" }).status === 0 && spawnSync("redis-server", ["--version"], { stdio: "ignore" }).status === 0;
  }

  static async start(masters = 3, replicasPerMaster = 1, nodeTimeoutMs = 2000): Promise<LocalRedisCluster> {
    const nodes: RedisNode[] = [];
    for (let i = 0; i < masters * (1 + replicasPerMaster); i++) {
      const [port, busPort] = [await freePort(), await freePort()];
      const dir = mkdtempSync(join(tmpdir(), "redis-cluster-"));
      const process = new ManagedProcess(
        `redis-cluster-${port}`,
        "redis-server",
        [
          "--port", String(port),
          "--cluster-port", String(busPort),
          "--bind", "127.0.0.1",
          "--protected-mode", "no",
          "--cluster-enabled", "yes",
          "--cluster-config-file", join(dir, "nodes.conf"),
          "--cluster-node-timeout", String(nodeTimeoutMs),
          "--dir", dir,
          "--save", "",
          "--appendonly", "no",
          "--daemonize", "no",
        ],
        {},
        /Ready to accept connections/,
        { cwd: dir, startTimeoutMs: 20_000 },
      );
      nodes.push({ port, busPort, dir, process });
    }
    const cluster = new LocalRedisCluster(nodes);
    try {
      await Promise.all(nodes.map((n) => n.process.start()));
      const created = await run(
        "redis-cli",
        ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", String(replicasPerMaster), "--cluster-yes"],
        60_000,
      );
      if (created.status !== 0) throw new Error(`redis-cli --cluster create failed (${created.status}):\n${created.output}`);
      await cluster.waitHealthy(60_000);
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  /** "127.0.0.1:p1,127.0.0.1:p2,..." of every node, for REDIS_CLUSTER_NODES. */
  get seedList(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(",");
  }

  get liveNodes(): RedisNode[] {
    return this.nodes.filter((n) => n.process.running);
  }

  async command<T>(node: RedisNode, ...args: (string | number)[]): Promise<T> {
    const r = new Redis({ host: "127.0.0.1", port: node.port, maxRetriesPerRequest: 0, connectTimeout: 2000, commandTimeout: 5000, lazyConnect: true, retryStrategy: () => null });
    r.on("error", () => {});
    try {
      await r.connect();
      return (await r.call(String(args[0]), ...args.slice(1).map(String))) as T;
    } finally {
      r.disconnect();
    }
  }

  /** The port of the master now serving the slot of `key`, as a live node sees the map. */
  async masterOf(key: string): Promise<RedisNode> {
    const node = this.liveNodes[0]!;
    const slot = await this.command<number>(node, "CLUSTER", "KEYSLOT", key);
    const slots = await this.command<[number, number, [string, number, string]][]>(node, "CLUSTER", "SLOTS");
    for (const [from, to, master] of slots) {
      if (slot >= from && slot <= to) {
        const found = this.nodes.find((n) => n.port === Number(master[1]));
        if (found) return found;
      }
    }
    throw new Error(`no master serves slot ${slot}`);
  }

  /** Every live node reports cluster_state:ok and sees every slot served; every live replica is in sync. */
  async waitHealthy(withinMs: number): Promise<void> {
    await waitFor("a healthy Redis Cluster", withinMs, async () => {
      for (const node of this.liveNodes) {
        const info = await this.command<string>(node, "CLUSTER", "INFO");
        if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info)) return false;
        const repl = await this.command<string>(node, "INFO", "replication");
        if (/role:slave/.test(repl) && !/master_link_status:up/.test(repl)) return false;
      }
      return true;
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.process.kill()));
    for (const n of this.nodes) rmSync(n.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// MariaDB Galera

const GALERA_PROVIDER = "/usr/lib/galera/libgalera_smm.so";

export interface GaleraNode {
  index: number;
  port: number;
  /** Group communication, incremental state transfer, full state transfer (rsync). */
  gcommPort: number;
  istPort: number;
  sstPort: number;
  dir: string;
  process: ManagedProcess;
}

/**
 * A multi-primary Galera cluster of mariadbd processes on loopback. Each node runs as the mysql
 * user (rsync state transfer fails as root) in a data directory of its own, without grant checks.
 */
export class LocalGalera {
  private constructor(
    readonly nodes: GaleraNode[],
    private readonly root: string,
  ) {}

  /** Why a Galera cluster cannot run here, or undefined. */
  static unavailableReason(): string | undefined {
    for (const bin of ["mariadbd", "mariadb-install-db", "rsync"]) {
      const r = spawnSync("sh", ["-c", `command -v ${bin} || test -x /usr/sbin/${bin}`], { stdio: "ignore" });
      if (r.status !== 0) return `${bin} is not installed`;
    }
    if (spawnSync("test", ["-f", GALERA_PROVIDER]).status !== 0) return `${GALERA_PROVIDER} (galera-4) is not installed`;
    if (spawnSync("id", ["mysql"], { stdio: "ignore" }).status !== 0) return "there is no mysql user";
    return undefined;
  }

  static async start(size = 3): Promise<LocalGalera> {
    const root = mkdtempSync(join(tmpdir(), "galera-"));
    const uid = Number(spawnSync("id", ["-u", "mysql"], { encoding: "utf8" }).stdout.trim());
    const gid = Number(spawnSync("id", ["-g", "mysql"], { encoding: "utf8" }).stdout.trim());
    chownSync(root, uid, gid);
    const nodes: GaleraNode[] = [];
    for (let i = 0; i < size; i++) {
      const dir = join(root, `node${i}`);
      mkdirSync(dir);
      chownSync(dir, uid, gid);
      const install = await run(
        "mariadb-install-db",
        ["--no-defaults", "--user=mysql", `--datadir=${join(dir, "data")}`, "--auth-root-authentication-method=normal", "--skip-test-db"],
        120_000,
      );
      if (install.status !== 0) {
        rmSync(root, { recursive: true, force: true });
        throw new Error(`mariadb-install-db failed (${install.status}): ${install.output}`);
      }
      nodes.push({ index: i, port: await freePort(), gcommPort: await freePort(), istPort: await freePort(), sstPort: await freePort(), dir, process: undefined as never });
    }
    const address = `gcomm://${nodes.map((n) => `127.0.0.1:${n.gcommPort}`).join(",")}`;
    for (const n of nodes) n.process = LocalGalera.nodeProcess(n, address);
    const galera = new LocalGalera(nodes, root);
    try {
      // The first node bootstraps the cluster; the others join it one at a time (each takes a
      // full state transfer by rsync).
      await nodes[0]!.process.start();
      await galera.waitSynced(nodes[0]!, 60_000);
      for (const n of nodes.slice(1)) {
        await n.process.start();
        await galera.waitSynced(n, 120_000);
      }
    } catch (err) {
      await galera.close();
      throw err;
    }
    return galera;
  }

  private static nodeProcess(n: GaleraNode, clusterAddress: string, bootstrap = n.index === 0): ManagedProcess {
    const args = [
      "--no-defaults",
      "--user=mysql",
      `--datadir=${join(n.dir, "data")}`,
      `--socket=${join(n.dir, "mysqld.sock")}`,
      `--pid-file=${join(n.dir, "mysqld.pid")}`,
      `--port=${n.port}`,
      "--bind-address=127.0.0.1",
      "--skip-grant-tables",
      "--skip-name-resolve",
      "--innodb-buffer-pool-size=64M",
      "--innodb-log-file-size=32M",
      "--max-connections=300",
      "--binlog-format=ROW",
      "--default-storage-engine=InnoDB",
      "--innodb-autoinc-lock-mode=2",
      "--wsrep-on=ON",
      `--wsrep-provider=${GALERA_PROVIDER}`,
      `--wsrep-cluster-address=${clusterAddress}`,
      "--wsrep-cluster-name=loopback",
      `--wsrep-node-name=node${n.index}`,
      `--wsrep-node-address=127.0.0.1:${n.gcommPort}`,
      `--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:${n.gcommPort};ist.recv_addr=127.0.0.1:${n.istPort};gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S`,
      "--wsrep-sst-method=rsync",
      `--wsrep-sst-receive-address=127.0.0.1:${n.sstPort}`,
      "--wsrep-slave-threads=2",
    ];
    if (bootstrap) args.push("--wsrep-new-cluster");
    return new ManagedProcess(`galera-node${n.index}`, "mariadbd", args, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/usr/bin` }, /ready for connections/, {
      cwd: n.dir,
      startTimeoutMs: 180_000,
    });
  }

  /** mysql:// URL of one node (no database). */
  url(node: GaleraNode): string {
    return `mysql://root@127.0.0.1:${node.port}/`;
  }

  async status(node: GaleraNode): Promise<Record<string, string>> {
    const conn = await mysql.createConnection({ uri: this.url(node), connectTimeout: 3000 });
    try {
      const [rows] = (await conn.query("SHOW GLOBAL STATUS LIKE 'wsrep_%'")) as unknown as [{ Variable_name: string; Value: string }[]];
      return Object.fromEntries(rows.map((r) => [r.Variable_name, r.Value]));
    } finally {
      await conn.end();
    }
  }

  /** The node is a Synced member of a primary component of `size` nodes (default: every live one). */
  async waitSynced(node: GaleraNode, withinMs: number, size?: number): Promise<void> {
    await waitFor(`galera node${node.index} synced`, withinMs, async () => {
      const s = await this.status(node);
      const want = size ?? this.nodes.filter((n) => n.process.running).length;
      return s.wsrep_local_state_comment === "Synced" && s.wsrep_cluster_status === "Primary" && Number(s.wsrep_cluster_size) === want && s.wsrep_ready === "ON";
    });
  }

  /** SIGKILL one node: the others carry on as a primary component of the rest. */
  kill(node: GaleraNode): Promise<void> {
    return node.process.kill();
  }

  /** Starts a killed node again; it joins the running cluster and catches up by state transfer. */
  async rejoin(node: GaleraNode): Promise<void> {
    const address = `gcomm://${this.nodes.map((n) => `127.0.0.1:${n.gcommPort}`).join(",")}`;
    const restarted = LocalGalera.nodeProcess(node, address, false);
    // Same process bookkeeping: crashes of the earlier runs are kept.
    restarted.crashes.push(...node.process.crashes);
    node.process = restarted;
    await node.process.start();
    await this.waitSynced(node, 180_000);
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.process?.kill()));
    rmSync(this.root, { recursive: true, force: true });
  }
}
