/**
 * Bad input, seeded: thousands of malformed requests to every RPC of the payment, merchant and
 * reconciliation services, over gRPC (raw protobuf bytes through a grpc-js client, plus a few
 * hand-made HTTP/2 frames) and over the Connect protocol on the HTTP port (plain fetch: JSON, and
 * protobuf as application/proto and application/connect+proto), against the three
 * systems running in a child process. Every request gets the error it should (INVALID_ARGUMENT,
 * or RESOURCE_EXHAUSTED over the size limit; never INTERNAL or UNKNOWN, never a success), with a
 * message that names no SQL, path or stack; no row is written to the payment or merchant
 * database, no Redis key and no reconciliation run appear; the process does not crash; and its
 * resident memory stays bounded.
 *
 * FUZZ_COUNT sets the requests per transport (default 2500), FUZZ_SEED replays a run.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { Code } from "@connectrpc/connect";
import { openDatabase, type Database, type DatabaseConfig } from "../../services/shared/storage/database.js";
import { paymentMigrations } from "../../services/payment/migrations/index.js";
import { merchantMigrations } from "../../services/merchant/migrations/index.js";
import { backends, freshStore, uniqueName, type Backend, type Store } from "../harness.js";
import { MalformedRequests, type Expected, type MalformedCase } from "./malformedRequests.js";
import type { PlatformAddresses } from "./platformProcess.js";
import { seededRng } from "../support/random.js";
import { deleteRedisKeys } from "../support/cleanup.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const COUNT = Number(process.env.FUZZ_COUNT ?? 2500);
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const MAX_MESSAGE_BYTES = 1024 * 1024;
const PARALLEL = 16;
/** Oversized requests per transport sent to measure memory: about 1.1 MiB each. */
const BIG_BATCH = 250;
/** Resident memory may grow this much over the run (warm-up excluded), far below what is sent. */
const RSS_GROWTH_BOUND = 160 * 1024 * 1024;

/** What an error message must never contain: stacks, source positions, SQL, driver codes. */
const LEAK = [/\bER_[A-Z_]+|SQLITE_[A-Z]+/, /\n\s+at |\.ts:\d+|\.js:\d+|node_modules|\berrno\b|no such table|syntax error|insert into|select .* from |knex/i];

interface Answer {
  /** Connect code name ("invalid_argument"), or "ok" for a success. */
  code: string;
  message: string;
  requestId: string | undefined;
  messages: number;
}

interface Tally {
  sent: number;
  byCode: Map<string, number>;
  byKind: Map<string, number>;
  rpcs: Set<string>;
  withoutRequestId: number;
  bytes: number;
  wrong: string[];
}

const newTally = (): Tally => ({ sent: 0, byCode: new Map(), byKind: new Map(), rpcs: new Set(), withoutRequestId: 0, bytes: 0, wrong: [] });
const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
const codeName = (code: number) => (code === 0 ? "ok" : Code[code]!.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase());

function preview(body: Uint8Array): string {
  const text = Buffer.from(body.subarray(0, 160)).toString("latin1").replace(/[^\x20-\x7e]/g, "·");
  return body.length > 160 ? `${text}… (${body.length} bytes)` : text;
}

function record(t: Tally, c: MalformedCase, a: Answer, forbidden: string[], requestIdExpected: boolean): void {
  t.sent++;
  t.bytes += c.body.length;
  t.rpcs.add(c.rpc);
  bump(t.byCode, a.code);
  bump(t.byKind, c.kind);
  if (requestIdExpected && !a.requestId) t.withoutRequestId++;
  const problems: string[] = [];
  if (a.code !== c.expected) problems.push(`answered ${a.code}, expected ${c.expected}`);
  if (a.messages > 0) problems.push(`streamed ${a.messages} messages`);
  if (a.code !== "ok" && a.message.trim() === "") problems.push("empty message");
  if (LEAK.some((re) => re.test(a.message)) || forbidden.some((f) => a.message.includes(f))) problems.push("message leaks internals");
  if (problems.length > 0 && t.wrong.length < 20) {
    t.wrong.push(`${c.rpc} [${c.kind}] ${problems.join(", ")}: "${a.message.slice(0, 200)}" for ${preview(c.body)}`);
  }
}

function summary(name: string, t: Tally): string {
  const codes = [...t.byCode].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
  return `${name}: ${t.sent} requests (${(t.bytes / 1024 / 1024).toFixed(1)} MiB) to ${t.rpcs.size} RPCs, ${t.byKind.size} kinds of damage; answers: ${codes}`;
}

async function inParallel<T>(items: Iterable<T>, parallel: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let next = it.next(); !next.done; next = it.next()) await fn(next.value);
    }),
  );
}

function* generate(count: number, make: () => MalformedCase): Iterable<MalformedCase> {
  for (let i = 0; i < count; i++) yield make();
}

// --- gRPC -------------------------------------------------------------------------------------

const identity = (b: Buffer) => b;

function grpcCall(client: grpc.Client, c: MalformedCase): Promise<Answer> {
  const body = Buffer.from(c.body);
  const options = { deadline: Date.now() + 60_000 };
  return new Promise((resolve) => {
    const finish = (err: grpc.ServiceError | null, messages: number) =>
      resolve({
        code: codeName(err ? err.code : 0),
        message: err ? err.details : "",
        requestId: err?.metadata?.get("x-request-id")[0]?.toString(),
        messages,
      });
    if (c.method.methodKind === "unary") {
      client.makeUnaryRequest(c.rpc, identity, identity, body, new grpc.Metadata(), options, (err) => finish(err, 0));
    } else {
      const call = client.makeServerStreamRequest(c.rpc, identity, identity, body, new grpc.Metadata(), options);
      let messages = 0;
      let failed: grpc.ServiceError | null = null;
      call.on("data", () => messages++);
      call.on("error", (err: grpc.ServiceError) => (failed = err));
      call.on("status", () => setImmediate(() => finish(failed, messages)));
    }
  });
}

/** One request on a raw HTTP/2 stream: returns the grpc-status and grpc-message. */
function rawGrpcFrame(session: http2.ClientHttp2Session, path: string, frame: Buffer): Promise<Answer> {
  return new Promise((resolve) => {
    const req = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    let status: string | undefined;
    let message = "";
    let requestId: string | undefined;
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) message = decodeURIComponent(String(h["grpc-message"]));
      if (h["x-request-id"] !== undefined) requestId = String(h["x-request-id"]);
    };
    req.on("response", take);
    req.on("trailers", take);
    req.on("data", () => {});
    req.on("close", () => resolve({ code: status === undefined ? "no status" : codeName(Number(status)), message, requestId, messages: 0 }));
    req.on("error", () => {});
    req.end(frame);
  });
}

/**
 * Framing errors are answered by grpc-js and connect-node themselves, before any handler runs:
 * UNIMPLEMENTED for a call without exactly one request message (both libraries), otherwise
 * INVALID_ARGUMENT, or RESOURCE_EXHAUSTED when the declared length is over the limit.
 */
function protocolError(answered: string): Expected {
  return answered === "unimplemented" || answered === "resource_exhausted" ? answered : "invalid_argument";
}

// --- Connect JSON -----------------------------------------------------------------------------

function envelope(flags: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.length);
  out.set(data, 5);
  return out;
}

/** One call on the Connect protocol: JSON (application/json, application/connect+json) or binary. */
async function jsonCall(baseUrl: string, c: MalformedCase, framed?: Uint8Array, binary = false): Promise<Answer> {
  const streaming = c.method.methodKind === "server_streaming";
  const format = binary ? "proto" : "json";
  let res: Response;
  let bytes: Uint8Array;
  try {
    res = await fetch(`${baseUrl}${c.rpc}`, {
      method: "POST",
      headers: { "content-type": streaming ? `application/connect+${format}` : `application/${format}` },
      body: framed ?? (streaming ? envelope(0, c.body) : c.body),
    });
    bytes = new Uint8Array(await res.arrayBuffer());
  } catch (err) {
    const cause = (err as Error & { cause?: Error }).cause;
    return { code: "no answer", message: `${(err as Error).message}: ${cause?.message ?? ""}`, requestId: undefined, messages: 0 };
  }
  const requestId = res.headers.get("x-request-id") ?? undefined;
  const parseError = (text: string) => {
    try {
      const e = JSON.parse(text) as { code?: string; message?: string };
      return { code: e.code ?? `http ${res.status}`, message: e.message ?? "" };
    } catch {
      return { code: `http ${res.status}`, message: text };
    }
  };
  if (!streaming || res.headers.get("content-type")?.startsWith("application/json")) {
    if (res.ok) return { code: "ok", message: "", requestId, messages: 1 };
    return { ...parseError(new TextDecoder().decode(bytes)), requestId, messages: 0 };
  }
  let messages = 0;
  for (let at = 0; at + 5 <= bytes.length; ) {
    const flags = bytes[at]!;
    const length = new DataView(bytes.buffer, bytes.byteOffset + at + 1, 4).getUint32(0);
    const data = bytes.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if ((flags & 0x02) === 0) {
      messages++;
      continue;
    }
    const end = JSON.parse(new TextDecoder().decode(data)) as { error?: { code?: string; message?: string } };
    if (!end.error) return { code: "ok", message: "", requestId, messages };
    return { code: end.error.code ?? "no code", message: end.error.message ?? "", requestId, messages };
  }
  return { code: "no end of stream", message: "", requestId, messages };
}

// --- the platform in a child process ------------------------------------------------------------

interface ChildPlatform {
  child: ChildProcess;
  addresses: PlatformAddresses;
  stderr: string[];
}

function startChild(env: NodeJS.ProcessEnv): Promise<ChildPlatform> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fuzz/platformProcess.ts"], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
  const stderr: string[] = [];
  let pendingErr = "";
  child.stderr!.on("data", (d: Buffer) => {
    pendingErr += d.toString();
    const lines = pendingErr.split("\n");
    pendingErr = lines.pop()!;
    stderr.push(...lines);
  });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const line = out.split("\n")[0];
      if (out.includes("\n") && line) resolve({ child, addresses: JSON.parse(line) as PlatformAddresses, stderr });
    });
    child.once("exit", (code, signal) => reject(new Error(`platform exited (${code ?? signal}) before it listened: ${stderr.join("\n")}`)));
  });
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error("no VmRSS");
  return Number(m[1]) * 1024;
}

async function rowCounts(db: Database): Promise<Record<string, number>> {
  const names: string[] =
    db.dialect === "sqlite"
      ? ((await db.knex.raw("select name from sqlite_master where type = 'table' and name not like 'sqlite_%'")) as { name: string }[]).map((r) => r.name)
      : ((await db.knex.raw("show tables")) as [Record<string, string>[]])[0].map((r) => Object.values(r)[0]!);
  const counts: Record<string, number> = {};
  for (const name of names.sort()) {
    const [row] = (await db.knex(name).count({ n: "*" })) as { n: number | string | bigint }[];
    counts[name] = Number(row!.n);
  }
  return counts;
}

const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

interface Snapshot {
  payment: Record<string, number>;
  merchant: Record<string, number>;
  redisKeys: number;
  runs: number;
}

for (const backend of backends()) {
  describe(`bad input fuzzing [${backend.name}]`, function () {
    this.timeout(300_000);
    let platform: ChildPlatform;
    let paymentStore: Store;
    let merchantStore: Store;
    let dataDir: string;
    let reconDir: string;
    let redisPrefix: string;
    let paymentDb: Database;
    let merchantDb: Database;
    let baseline: Snapshot;
    let rssBefore: number;
    let grpcClients: Map<string, grpc.Client>;
    const tallies = { grpc: newTally(), json: newTally(), connectBinary: newTally(), frames: newTally(), big: newTally() };

    const storeConfig = (s: Store): DatabaseConfig => ({ mysqlUrl: s.mysqlUrl, sqliteFile: s.sqliteFile, poolSize: 2 });

    async function snapshot(b: Backend): Promise<Snapshot> {
      let redisKeys = 0;
      if (b.redisUrl) {
        const redis = new Redis(b.redisUrl);
        redisKeys = (await redis.keys(`{${redisPrefix}}*`)).length;
        redis.disconnect();
      }
      return { payment: await rowCounts(paymentDb), merchant: await rowCounts(merchantDb), redisKeys, runs: readdirSync(reconDir).length };
    }

    const forbidden = () => [dataDir, repoRoot];
    // order.v1.OrderExportService is served by the payment system and the merchant alike (one
    // implementation, services/shared/orders/exportService.ts); the payment system's is fuzzed.
    const systemOf = (rpc: string) => (rpc.startsWith("/payment") || rpc.startsWith("/order") ? "payment" : rpc.startsWith("/merchant") ? "merchant" : "recon");
    const grpcAddressOf = (rpc: string) => platform.addresses[systemOf(rpc)];

    before(async () => {
      console.log(`      fuzz seed ${SEED}, ${COUNT} requests per transport (replay: FUZZ_SEED=${SEED} FUZZ_COUNT=${COUNT})`);
      paymentStore = freshStore(backend, "payment");
      merchantStore = freshStore(backend, "merchant");
      dataDir = mkdtempSync(join(tmpdir(), "fuzz-"));
      reconDir = join(dataDir, "reconciliation");
      mkdirSync(join(dataDir, "input"));
      redisPrefix = uniqueName("fz");
      const env: NodeJS.ProcessEnv = {};
      for (const k of ["PATH", "HOME", "TMPDIR", "NODE_OPTIONS"]) if (process.env[k] !== undefined) env[k] = process.env[k];
      Object.assign(env, {
        HOST: "127.0.0.1",
        PAYMENT_GRPC_PORT: "0",
        PAYMENT_HTTP_PORT: "0",
        MERCHANT_GRPC_PORT: "0",
        MERCHANT_HTTP_PORT: "0",
        RECON_GRPC_PORT: "0",
        RECON_HTTP_PORT: "0",
        RECON_DIR: reconDir,
        RECON_INPUT_DIR: join(dataDir, "input"),
        PAYMENT_REDIS_PREFIX: redisPrefix,
        SETTLE_CRON: "off",
        RESOLVE_CRON: "off",
        MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES),
        LOG_LEVEL: "warn",
      });
      if (backend.mysqlUrl) {
        env.PAYMENT_MYSQL_URL = paymentStore.mysqlUrl;
        env.MERCHANT_MYSQL_URL = merchantStore.mysqlUrl;
      } else {
        env.PAYMENT_SQLITE_FILE = paymentStore.sqliteFile;
        env.MERCHANT_SQLITE_FILE = merchantStore.sqliteFile;
      }
      if (backend.redisUrl) env.REDIS_URL = backend.redisUrl;
      platform = await startChild(env);
      paymentDb = await openDatabase(storeConfig(paymentStore), paymentMigrations);
      merchantDb = await openDatabase(storeConfig(merchantStore), merchantMigrations);
      grpcClients = new Map(
        (["payment", "merchant", "recon"] as const).map((s) => [s, new grpc.Client(platform.addresses[s].grpc, grpc.credentials.createInsecure())]),
      );
      // Warm-up, so that the memory baseline includes loaded code and filled pools.
      const warm = new MalformedRequests(seededRng(SEED ^ 0x5eed), MAX_MESSAGE_BYTES);
      await inParallel(generate(300, () => warm.binary()), PARALLEL, async (c) => void (await grpcCall(grpcClients.get(systemOf(c.rpc))!, c)));
      await inParallel(generate(300, () => warm.json()), PARALLEL, async (c) => void (await jsonCall(grpcAddressOf(c.rpc).http, c)));
      baseline = await snapshot(backend);
      rssBefore = rssBytes(platform.addresses.pid);
    });

    after(async () => {
      for (const c of grpcClients?.values() ?? []) c.close();
      platform?.child.kill("SIGTERM");
      await new Promise((resolve) => (platform?.child.exitCode !== null ? resolve(undefined) : platform.child.once("exit", resolve)));
      await paymentDb?.close();
      await merchantDb?.close();
      await paymentStore?.drop();
      await merchantStore?.drop();
      if (backend.redisUrl) await deleteRedisKeys(backend.redisUrl, redisPrefix);
      rmSync(dataDir, { recursive: true, force: true });
    });

    it("answers malformed protobuf sent over gRPC to every RPC with INVALID_ARGUMENT or RESOURCE_EXHAUSTED", async () => {
      const gen = new MalformedRequests(seededRng(SEED), MAX_MESSAGE_BYTES);
      const t = tallies.grpc;
      await inParallel(generate(COUNT, () => gen.binary()), PARALLEL, async (c) => {
        const client = grpcClients.get(systemOf(c.rpc))!;
        const answer = await grpcCall(client, c);
        // grpc-js refuses an oversized message itself, before any handler sees a request id.
        record(t, c, answer, forbidden(), c.expected === "invalid_argument");
      });
      console.log(`      ${summary("gRPC", t)}`);
      expect(t.wrong, `seed ${SEED}:\n${t.wrong.join("\n")}`).to.deep.equal([]);
      expect(t.withoutRequestId, "refusals without an x-request-id trailer").to.equal(0);
      expect([...t.rpcs].sort()).to.deep.equal([...gen.rpcs].sort());
    });

    it("answers malformed JSON sent to the Connect gateway for every RPC with invalid_argument or resource_exhausted", async () => {
      const gen = new MalformedRequests(seededRng(SEED + 1), MAX_MESSAGE_BYTES);
      const t = tallies.json;
      await inParallel(generate(COUNT, () => gen.json()), PARALLEL, async (c) => {
        record(t, c, await jsonCall(grpcAddressOf(c.rpc).http, c), forbidden(), true);
      });
      console.log(`      ${summary("JSON", t)}`);
      expect(t.wrong, `seed ${SEED}:\n${t.wrong.join("\n")}`).to.deep.equal([]);
      expect(t.withoutRequestId, "answers without an x-request-id header").to.equal(0);
      expect([...t.rpcs].sort()).to.deep.equal([...gen.rpcs].sort());
    });

    it("answers malformed protobuf sent to the Connect gateway (application/proto, application/connect+proto) for every RPC with invalid_argument or resource_exhausted", async () => {
      const gen = new MalformedRequests(seededRng(SEED + 5), MAX_MESSAGE_BYTES);
      const t = tallies.connectBinary;
      await inParallel(generate(Math.ceil(COUNT / 2), () => gen.binary()), PARALLEL, async (c) => {
        record(t, c, await jsonCall(grpcAddressOf(c.rpc).http, c, undefined, true), forbidden(), true);
      });
      console.log(`      ${summary("Connect binary", t)}`);
      expect(t.wrong, `seed ${SEED}:\n${t.wrong.join("\n")}`).to.deep.equal([]);
      expect(t.withoutRequestId, "answers without an x-request-id header").to.equal(0);
      expect([...t.rpcs].sort()).to.deep.equal([...gen.rpcs].sort());
    });

    it("answers broken frames (gRPC length prefixes, Connect envelopes) with a protocol error, never INTERNAL or UNKNOWN", async () => {
      const gen = new MalformedRequests(seededRng(SEED + 2), MAX_MESSAGE_BYTES);
      const rng = seededRng(SEED + 3);
      const t = tallies.frames;
      const sessions = new Map<string, http2.ClientHttp2Session>();
      const sessionFor = (address: string) => {
        let s = sessions.get(address);
        if (!s) sessions.set(address, (s = http2.connect(`http://${address}`)));
        return s;
      };
      const prefix = (flags: number, length: number) => {
        const b = Buffer.alloc(5);
        b[0] = flags;
        b.writeUInt32BE(length, 1);
        return b;
      };
      try {
        for (let i = 0; i < Math.max(50, Math.floor(COUNT / 20)); i++) {
          const c = gen.binary();
          const variant = Math.floor(rng() * 4);
          let frame: Buffer;
          let kind: string;
          if (variant === 0) {
            frame = Buffer.concat([prefix(0, c.body.length + 1 + Math.floor(rng() * 1000)), Buffer.from(c.body)]);
            kind = "length prefix longer than the data";
          } else if (variant === 1) {
            frame = prefix(0, Math.floor(rng() * 100)).subarray(0, 1 + Math.floor(rng() * 4));
            kind = "cut inside the length prefix";
          } else if (variant === 2) {
            frame = Buffer.concat([prefix(0, 0), prefix(0, 0)]);
            kind = "two messages on a unary or server-streaming call";
          } else {
            frame = Buffer.alloc(0);
            kind = "no message at all";
          }
          const a = await rawGrpcFrame(sessionFor(grpcAddressOf(c.rpc).grpc), c.rpc, frame);
          record(t, { ...c, kind: `gRPC: ${kind}`, body: frame, expected: protocolError(a.code) }, a, forbidden(), false);
        }
        for (let i = 0; i < Math.max(50, Math.floor(COUNT / 20)); i++) {
          let c = gen.json();
          while (c.method.methodKind !== "server_streaming" || c.expected !== "invalid_argument") c = gen.json();
          const whole = envelope(0, c.body);
          const variant = Math.floor(rng() * 3);
          const framed =
            variant === 0 ? whole.subarray(0, Math.floor(rng() * whole.length)) : variant === 1 ? envelope(0x02, c.body) : Uint8Array.from([...whole, ...envelope(0, c.body)]);
          const kind = ["Connect envelope cut short", "end-of-stream flag on the request", "two request messages"][variant]!;
          const a = await jsonCall(grpcAddressOf(c.rpc).http, c, framed);
          record(t, { ...c, kind, body: framed, expected: protocolError(a.code) }, a, forbidden(), true);
        }
      } finally {
        for (const s of sessions.values()) s.close();
      }
      console.log(`      ${summary("frames", t)}`);
      expect(t.wrong, `seed ${SEED}:\n${t.wrong.join("\n")}`).to.deep.equal([]);
      expect(t.byCode.has("internal") || t.byCode.has("unknown")).to.equal(false);
    });

    it(`refuses a big batch of ${BIG_BATCH} oversized requests per transport, each with RESOURCE_EXHAUSTED`, async () => {
      const gen = new MalformedRequests(seededRng(SEED + 4), MAX_MESSAGE_BYTES);
      const t = tallies.big;
      await inParallel(generate(BIG_BATCH, () => gen.oversizedBinary()), PARALLEL, async (c) => {
        record(t, c, await grpcCall(grpcClients.get(systemOf(c.rpc))!, c), forbidden(), false);
      });
      await inParallel(generate(BIG_BATCH, () => gen.oversizedJson()), PARALLEL, async (c) => {
        record(t, c, await jsonCall(grpcAddressOf(c.rpc).http, c), forbidden(), true);
      });
      console.log(`      ${summary("oversized", t)}`);
      expect(t.wrong, `seed ${SEED}:\n${t.wrong.join("\n")}`).to.deep.equal([]);
    });

    it("wrote no row, no Redis key and no run, did not crash, and kept its memory bounded", async () => {
      const after = await snapshot(backend);
      const rssAfter = rssBytes(platform.addresses.pid);
      const sent = Object.values(tallies).reduce((sum, t) => sum + t.bytes, 0);
      console.log(
        `      rows written: ${total(after.payment) + total(after.merchant) - total(baseline.payment) - total(baseline.merchant)} ` +
          `(payment ${JSON.stringify(after.payment)}, merchant ${JSON.stringify(after.merchant)}); ` +
          `RSS ${(rssBefore / 2 ** 20).toFixed(0)} MiB before, ${(rssAfter / 2 ** 20).toFixed(0)} MiB after ${(sent / 2 ** 20).toFixed(0)} MiB of requests; ` +
          `process ${platform.child.exitCode === null && platform.child.signalCode === null ? "running" : "gone"}`,
      );
      expect(after).to.deep.equal(baseline);
      expect(platform.child.exitCode, "the platform process is still running").to.equal(null);
      expect(platform.child.signalCode).to.equal(null);
      expect(platform.stderr.filter((l) => l.includes('"call failed"')), "internal failures logged").to.deep.equal([]);
      // Still serving: a well-formed read answers normally.
      const health = await fetch(`${platform.addresses.payment.http}/healthz`);
      expect(health.status).to.equal(200);
      expect(sent, "the run sent far more than the bound").to.be.greaterThan(2 * RSS_GROWTH_BOUND);
      expect(rssAfter - rssBefore, "resident memory growth").to.be.lessThan(RSS_GROWTH_BOUND);
    });
  });
}
