/**
 * Files of the kind a finance team receives, and worse: every one is either reconciled exactly or
 * refused with the file, the line an editor shows, the column and a short excerpt of the value,
 * and a refused run leaves nothing behind (no descriptor, no file, no run directory).
 */
import { execFileSync } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunKind, type CsvSource, type DiffRow } from "../../gen/recon/v1/recon_pb.js";
import { RunStore } from "../../services/recon/runs.js";
import { startPlatform, type Platform } from "../harness.js";
import { OrderKey, OrderType } from "../../gen/order/v1/order_pb.js";

async function refusal(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to be refused");
}

const content = (value: string): CsvSource => ({ source: { case: "content", value } }) as CsvSource;
const path = (value: string, encoding = ""): CsvSource => ({ source: { case: "path", value }, encoding }) as CsvSource;

/** Every file and directory under `dir`, recursively. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...(await tree(p)));
  }
  return out.sort();
}

describe("hostile files handed in [embedded]", () => {
  let p: Platform;
  before(async () => {
    p = await startPlatform({ name: "embedded" });
  });
  after(async () => p?.close());

  const reconcile = (merchant: CsvSource, payment: CsvSource, orderType = OrderType.PAYMENT) =>
    p.reconClient.reconcileFiles({ orderType, key: OrderKey.RESPONSE_ID, merchant, payment });
  const diffRows = async (runId: string): Promise<DiffRow[]> => {
    const rows: DiffRow[] = [];
    for await (const m of p.reconClient.streamDiffRows({ runId })) rows.push(...m.rows);
    return rows;
  };
  const runDirs = async () => (await readdir(p.reconDir)).filter((n) => /^\d{17}-/.test(n)).sort();

  it("reads nasty but legal CSV: BOM, CRLF, quoted commas, quotes and line breaks, Chinese ids, reordered and extra columns", async () => {
    const merchant =
      '\ufefftotal_fee,note,response_id,request_id\r\n10,"a, b",订单一,请求一\r\n20,"say ""hi""","订单二","请求二"\r\n3,"line one\r\nline two",订单三,请求三\r\n';
    const payment = "request_id,response_id,total_fee,extra\r\n请求一,订单一,10,x\r\n请求三,订单三,4,y\r\n请求四,订单四,40,z\r\n";
    const { run } = await reconcile(content(merchant), content(payment));
    const rows = await diffRows(run!.runId);
    expect(rows.map((r) => [r.requestId, r.responseId, r.amount, r.diffType])).to.deep.equal([
      ["请求一", "订单一", 10n, "F000"],
      ["请求三", "订单三", 4n, "F115"],
      ["请求四", "订单四", 40n, "F113"],
      ["请求二", "订单二", 20n, "F114"],
    ]);
  });

  it("reconciles unsorted files of 100,000 orders exactly as a FULL OUTER JOIN does, in the seed's order", async () => {
    const n = 100_000;
    // A fixed permutation: i * 7919 mod n visits every i once.
    const m: string[] = ["response_id,saler_id,total_fee"];
    const pay: string[] = ["response_id,saler_id,total_fee"];
    const expected = new Map<string, [string, bigint]>();
    for (let j = 0; j < n; j++) {
      const i = (j * 7919) % n;
      const id = `r${String(i).padStart(7, "0")}`;
      const amount = 100 + (i % 977);
      if (i % 10 === 1) {
        pay.push(`${id},s${i % 7},${amount}`);
        expected.set(id, ["F113", BigInt(amount)]);
      } else if (i % 10 === 2) {
        m.push(`${id},s${i % 7},${amount}`);
        expected.set(id, ["F114", BigInt(amount)]);
      } else if (i % 10 === 3) {
        m.push(`${id},s${i % 7},${amount}`);
        pay.push(`${id},s${i % 7},${amount + 1}`);
        expected.set(id, ["F115", BigInt(amount + 1)]);
      } else {
        m.push(`${id},s${i % 7},${amount}`);
        pay.push(`${id},s${i % 7},${amount}`);
        expected.set(id, ["F000", BigInt(amount)]);
      }
    }
    await writeFile(join(p.reconDir, "unsorted_m.csv"), m.join("\n") + "\n");
    await writeFile(join(p.reconDir, "unsorted_p.csv"), pay.join("\n") + "\n");
    const { run } = await reconcile(path("unsorted_m.csv"), path("unsorted_p.csv"));
    const rows = await diffRows(run!.runId);
    expect(rows).to.have.length(n);
    const got = rows.map((r) => `${r.responseId} ${r.diffType} ${r.amount}`);
    const byKey = [...expected.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const want = [...byKey.filter(([, [t]]) => t !== "F114"), ...byKey.filter(([, [t]]) => t === "F114")].map(([id, [t, a]]) => `${id} ${t} ${a}`);
    expect(got).to.deep.equal(want);
    expect(run!.diffs[0]).to.include({ f000Count: 70_000n, f113Count: 10_000n, f114Count: 10_000n, f115Count: 10_000n });
  });

  it("reconciles files already in key order in the seed's order, merchant-only rows last", async () => {
    const n = 100_000;
    const m: string[] = ["response_id,total_fee"];
    const pay: string[] = ["response_id,total_fee"];
    const want: string[] = [];
    const merchantOnly: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = `r${String(i).padStart(7, "0")}`;
      if (i % 10 === 1) {
        pay.push(`${id},5`);
        want.push(`${id} F113 5`);
      } else if (i % 10 === 2) {
        m.push(`${id},6`);
        merchantOnly.push(`${id} F114 6`);
      } else {
        m.push(`${id},7`);
        pay.push(`${id},${i % 10 === 3 ? 8 : 7}`);
        want.push(`${id} ${i % 10 === 3 ? "F115 8" : "F000 7"}`);
      }
    }
    await writeFile(join(p.reconDir, "sorted_m.csv"), m.join("\n") + "\n");
    await writeFile(join(p.reconDir, "sorted_p.csv"), pay.join("\n") + "\n");
    const { run } = await reconcile(path("sorted_m.csv"), path("sorted_p.csv"));
    const rows = await diffRows(run!.runId);
    expect(rows.map((r) => `${r.responseId} ${r.diffType} ${r.amount}`)).to.deep.equal([...want, ...merchantOnly]);
    expect(run!.diffs[0]).to.include({ f000Count: 70_000n, f113Count: 10_000n, f114Count: 10_000n, f115Count: 10_000n, f114Amount: 60_000n });
  });

  it("refuses a duplicate key in sorted files wherever it is: payment side, matched merchant side, merchant-only", async () => {
    const sorted = "response_id,total_fee\na,1\nb,1\nc,1\nd,1\n";
    const cases: [string, string, string][] = [
      [sorted, "response_id,total_fee\na,1\nb,1\nb,1\nd,1\n", 'payment_payments.csv, line 4, column response_id: duplicate response_id "b": also on line 3'],
      ["response_id,total_fee\na,1\nb,1\nb,2\nd,1\n", sorted, 'merchant_payments.csv, line 4, column response_id: duplicate response_id "b": also on line 3'],
      ["response_id,total_fee\na,1\nx,1\nx,1\n", sorted, 'merchant_payments.csv, line 4, column response_id: duplicate response_id "x": also on line 3'],
      ["response_id,total_fee\nx,1\na,1\nx,1\n", sorted, 'merchant_payments.csv, line 4, column response_id: duplicate response_id "x": also on line 2'],
    ];
    for (const [merchant, payment, message] of cases) {
      const e = await refusal(reconcile(content(merchant), content(payment)));
      expect(e.rawMessage).to.equal(message);
    }
  });

  it("refuses amounts beyond 10^12 fen or beyond int64, saves nothing, and ListRuns keeps answering", async () => {
    const before = await runDirs();
    let e = await refusal(reconcile(content("response_id,total_fee\na,99999999999999999999\n"), content("response_id,total_fee\na,1\n")));
    expect(e.code).to.equal(Code.InvalidArgument);
    expect(e.rawMessage).to.equal('merchant_payments.csv, line 2, column total_fee: the amount must be an integer number of fen from 0 to 1000000000000, got "99999999999999999999"');
    e = await refusal(reconcile(content("response_id,total_fee\na,1\n"), content("response_id,total_fee\na,1000000000001\n")));
    expect(e.rawMessage).to.match(/^payment_payments\.csv, line 2, column total_fee: .* got "1000000000001"$/);
    e = await refusal(reconcile(content("response_id,total_fee\na,-1\n"), content("response_id,total_fee\n")));
    expect(e.rawMessage).to.match(/got "-1"$/);
    expect(await runDirs()).to.deep.equal(before);
    const { run } = await reconcile(content("response_id,total_fee\na,1000000000000\n"), content("response_id,total_fee\na,1000000000000\n"));
    expect(run!.diffs[0]).to.include({ f000Count: 1n, f000Amount: 1_000_000_000_000n });
    expect((await p.reconClient.listRuns({})).runs.length).to.be.greaterThan(0);
  });

  it("lists a run whose summary is damaged as damaged, and every other run as before", async () => {
    const { run: good } = await reconcile(content("response_id,total_fee\na,1\n"), content("response_id,total_fee\na,1\n"));
    const { run: bad } = await reconcile(content("response_id,total_fee\nb,1\n"), content("response_id,total_fee\nb,1\n"));
    await writeFile(join(bad!.directory, "summary.json"), '{"run_id": "not json');
    const { runs } = await p.reconClient.listRuns({ pageSize: 1000 });
    const damaged = runs.find((r) => r.runId === bad!.runId);
    expect(damaged, "the damaged run is listed").to.not.equal(undefined);
    expect(damaged!.damaged).to.match(/summary\.json/);
    expect(damaged!.kind).to.equal(RunKind.RECONCILIATION);
    expect(runs.find((r) => r.runId === good!.runId)).to.deep.include({ damaged: "", balanced: true });
    expect((await p.reconClient.getRun({ runId: bad!.runId })).run!.damaged).to.match(/summary\.json/);
  });

  it("refuses invalid UTF-8 naming file and line, instead of matching two different keys", async () => {
    await writeFile(join(p.reconDir, "bad_utf8_m.csv"), Buffer.concat([Buffer.from("response_id,total_fee\nok,1\n"), Buffer.from([0x61, 0xff, 0x2c, 0x31, 0x0a])]));
    await writeFile(join(p.reconDir, "bad_utf8_p.csv"), Buffer.concat([Buffer.from("response_id,total_fee\nok,1\n"), Buffer.from([0x61, 0xfe, 0x2c, 0x31, 0x0a])]));
    const e = await refusal(reconcile(path("bad_utf8_m.csv"), path("bad_utf8_p.csv")));
    expect(e.code).to.equal(Code.InvalidArgument);
    expect(e.rawMessage).to.match(/^bad_utf8_m\.csv, line 3: the text is not valid UTF-8/);
  });

  it("reads a GBK bill declared as such, and its Chinese ids survive", async () => {
    // "订单" B6A9 B5A5, "中文" D6D0 CEC4 in GBK.
    const gbk = (ascii: string, ...bytes: number[][]) => Buffer.concat([Buffer.from(ascii), ...bytes.map((b) => Buffer.from(b))]);
    const line = (id: number[], amount: string) => Buffer.concat([Buffer.from(id), Buffer.from(`,${amount}\r\n`)]);
    const dingdan = [0xb6, 0xa9, 0xb5, 0xa5];
    const zhongwen = [0xd6, 0xd0, 0xce, 0xc4];
    expect(new TextDecoder("gbk").decode(Buffer.from([...dingdan, ...zhongwen]))).to.equal("订单中文");
    await writeFile(join(p.reconDir, "gbk_bill.csv"), Buffer.concat([gbk("response_id,total_fee\r\n"), line(dingdan, "10"), line(zhongwen, "20")]));
    const { run } = await reconcile(content("response_id,total_fee\n订单,10\n中文,21\n"), path("gbk_bill.csv", "GBK"));
    const rows = await diffRows(run!.runId);
    expect(rows.map((r) => `${r.responseId} ${r.diffType}`)).to.deep.equal(["中文 F115", "订单 F000"]);
    // Undeclared, the same bill is refused, not misread.
    const e = await refusal(reconcile(content("response_id,total_fee\n"), path("gbk_bill.csv")));
    expect(e.rawMessage).to.match(/^gbk_bill\.csv, line 2: the text is not valid UTF-8/);
    const bad = await refusal(reconcile(content("response_id,total_fee\n"), path("gbk_bill.csv", "latin1")));
    expect(bad.rawMessage).to.match(/^payment\.encoding: must be UTF-8/);
  });

  it("refuses a duplicate key in an audit order file, naming both lines", async () => {
    const e = await refusal(
      p.reconClient.auditFiles({
        // A lost order (r2) and a duplicated one (r1) that add up to the right balance.
        merchantPayments: content("response_id,saler_id,total_fee\nr1,s,10\nr1,s,10\n"),
        merchantWithdrawals: content("response_id,saler_id,withdraw_money\n"),
        balances: content("saler_id,balance\ns,20\n"),
      }),
    );
    expect(e.rawMessage).to.equal('merchant_payments.csv, line 3, column response_id: duplicate response_id "r1": also on line 2');
    const b = await refusal(
      p.reconClient.auditFiles({
        merchantPayments: content("saler_id,total_fee\ns,10\n"),
        merchantWithdrawals: content("saler_id,withdraw_money\n"),
        balances: content("saler_id,balance\ns,10\nt,0\ns,10\n"),
      }),
    );
    expect(b.rawMessage).to.equal('payment_balances.csv, line 4, column saler_id: duplicate saler_id "s": also on line 2');
  });

  it("refuses a duplicate key in an unsorted file at the lines where it is", async () => {
    const e = await refusal(reconcile(content("response_id,total_fee\nc,1\na,1\nb,1\na,2\n"), content("response_id,total_fee\n")));
    expect(e.rawMessage).to.equal('merchant_payments.csv, line 5, column response_id: duplicate response_id "a": also on line 3');
  });

  it("names the physical line an editor shows, past quoted line breaks and blank lines", async () => {
    const merchant = 'response_id,total_fee,note\r\na,1,"two\r\nlines"\r\n\r\nb,x,y\r\n';
    const e = await refusal(reconcile(content(merchant), content("response_id,total_fee,note\r\n")));
    expect(e.rawMessage).to.equal('merchant_payments.csv, line 5, column total_fee: the amount must be an integer number of fen from 0 to 1000000000000, got "x"');
    const fields = await refusal(reconcile(content('response_id,total_fee\na,1\n"b\nc",2,3\n'), content("response_id,total_fee\n")));
    expect(fields.rawMessage).to.equal("merchant_payments.csv, line 3: the row has 3 fields but the header has 2");
  });

  it("keeps messages short: at most 100 characters of an offending value, and no 1 MiB header echoed", async () => {
    const e = await refusal(reconcile(content(`response_id,total_fee\na,${"9".repeat(5000)}\n`), content("response_id,total_fee\n")));
    expect(e.rawMessage.length).to.be.lessThan(300);
    expect(e.rawMessage).to.contain(`got "${"9".repeat(100)}" (5000 bytes, first 100 characters shown)`);
    const h = await refusal(reconcile(content(`${"h".repeat(1 << 20)},total_fee\n`), content("response_id,total_fee\n")));
    expect(h.rawMessage).to.equal("merchant_payments.csv, line 1: the line is longer than 65536 bytes");
    const header = await refusal(reconcile(content(`${"h".repeat(60_000)},total_fee\n`), content("response_id,total_fee\n")));
    expect(header.rawMessage.length).to.be.lessThan(300);
    expect(header.rawMessage).to.match(/line 1: the header has no response_id column/);
  });

  it("reads only regular files under the input directory; outside and missing read the same; nothing is left behind", async () => {
    await mkdir(join(p.reconDir, "a_directory"), { recursive: true });
    const before = await runDirs();
    const dir = await refusal(reconcile(content("response_id,total_fee\n"), path("a_directory")));
    expect(dir.code).to.equal(Code.InvalidArgument);
    expect(dir.rawMessage).to.equal('payment.path: "a_directory" is not a regular file');
    const outside = await refusal(reconcile(content("response_id,total_fee\n"), path("/etc/passwd")));
    const missing = await refusal(reconcile(content("response_id,total_fee\n"), path("/etc/no-such-file-here")));
    expect(outside.rawMessage.replace("/etc/passwd", "X")).to.equal(missing.rawMessage.replace("/etc/no-such-file-here", "X"));
    const up = await refusal(reconcile(content("response_id,total_fee\n"), path("../../etc/passwd")));
    expect(up.rawMessage).to.match(/^payment\.path: no regular file/);
    expect(await runDirs()).to.deep.equal(before);
  });

  it("refuses FIFOs at once, five at a time, and keeps serving", async () => {
    const fifos = [0, 1, 2, 3, 4].map((i) => join(p.reconDir, `fifo${i}`));
    for (const f of fifos) execFileSync("mkfifo", [f]);
    const answers = await Promise.all(fifos.map((_, i) => refusal(reconcile(content("response_id,total_fee\n"), path(`fifo${i}`)))));
    for (const [i, e] of answers.entries()) expect(e.rawMessage).to.equal(`payment.path: "fifo${i}" is not a regular file`);
    const { run } = await reconcile(content("response_id,total_fee\na,1\n"), content("response_id,total_fee\na,1\n"));
    expect(run!.balanced).to.equal(true);
  });

  it("refuses a 200 MB file without a line break, reading it in bounded memory", async () => {
    const file = join(p.reconDir, "one_line.csv");
    const out = createWriteStream(file);
    const chunk = Buffer.alloc(1 << 20, 0x61);
    for (let i = 0; i < 200; i++) if (!out.write(chunk)) await once(out, "drain");
    out.end();
    await once(out, "finish");
    const rssBefore = process.memoryUsage().rss;
    const e = await refusal(reconcile(content("response_id,total_fee\n"), path("one_line.csv")));
    expect(e.rawMessage).to.equal("one_line.csv, line 1: the line is longer than 65536 bytes");
    expect(process.memoryUsage().rss - rssBefore).to.be.lessThan(100 * 2 ** 20);
    await rm(file);
  });

  it("AuditFiles reports the rows of every file it read", async () => {
    const { run } = await p.reconClient.auditFiles({
      merchantPayments: content("saler_id,total_fee\nsaler1,10\nsaler2,100\nsaler1,40\nsaler1,20\n"),
      merchantWithdrawals: content("saler_id,withdraw_money\nsaler1,10\nsaler2,10\nsaler2,5\nsaler2,5\n"),
      balances: content("saler_id,balance\nsaler1,60\nsaler2,100\n"),
    });
    expect(run!.files.map((f) => `${f.name}:${f.rows}`)).to.deep.equal([
      "merchant_payments.csv:4",
      "merchant_withdrawals.csv:4",
      "payment_balances.csv:2",
      "audit.csv:2",
    ]);
  });

  it("reads both sides at once: a side refused at once waits for the other, leaves nothing behind, and the merchant side's refusal comes first", async function () {
    this.timeout(300_000);
    // A large valid payment file is still being copied into the run when the merchant side is refused.
    const big = join(p.reconDir, "big_valid.csv");
    const out = createWriteStream(big);
    out.write("response_id,total_fee\n");
    for (let b = 0; b < 40; b++) {
      if (!out.write(Array.from({ length: 25_000 }, (_, i) => `r${b * 25_000 + i},${i}\n`).join(""))) await once(out, "drain");
    }
    out.end();
    await once(out, "finish");
    execFileSync("mkfifo", [join(p.reconDir, "side_fifo")]);
    const badUtf8 = Buffer.concat([Buffer.from("response_id,total_fee\n"), Buffer.from([0xff, 0x2c, 0x31, 0x0a])]).toString("latin1");
    const fds = async () => (await readdir("/proc/self/fd")).length;
    await refusal(reconcile(path("side_fifo"), path("big_valid.csv"))); // warm up
    const [fdBefore, treeBefore] = [await fds(), await tree(p.reconDir)];
    for (let i = 0; i < 5; i++) {
      const e = await refusal(reconcile(path("side_fifo"), path("big_valid.csv")));
      expect(e.code).to.equal(Code.InvalidArgument);
      expect(e.rawMessage).to.match(/^merchant\.path/);
      expect(await tree(p.reconDir)).to.deep.equal(treeBefore);
    }
    // Both sides refused: the merchant side's reason, whichever side failed first.
    await writeFile(join(p.reconDir, "bad_side.csv"), Buffer.from(badUtf8, "latin1"));
    const both = await refusal(reconcile(path("big_valid.csv"), path("side_fifo")));
    expect(both.rawMessage).to.match(/^payment\.path/);
    const first = await refusal(reconcile(path("bad_side.csv"), path("side_fifo")));
    expect(first.rawMessage).to.match(/^bad_side\.csv, line 2: the text is not valid UTF-8/);
    expect(await fds()).to.equal(fdBefore);
    expect(await tree(p.reconDir)).to.deep.equal([...treeBefore, join(p.reconDir, "bad_side.csv")].sort());
    await rm(big);
  });

  it("leaves no descriptor, file or directory behind after 50 refused runs of each kind", async function () {
    this.timeout(900_000); // 500 runs: a budget for a busy machine, not a speed check
    await writeFile(join(p.reconDir, "dup_big.csv"), "response_id,total_fee\n" + Array.from({ length: 5_000 }, (_, i) => `k${i % 4_999},1`).join("\n") + "\n");
    await writeFile(join(p.reconDir, "bad_utf8.csv"), Buffer.concat([Buffer.from("response_id,total_fee\n"), Buffer.from([0xc3, 0x28, 0x2c, 0x31, 0x0a])]));
    await mkdir(join(p.reconDir, "some_dir"), { recursive: true });
    execFileSync("mkfifo", [join(p.reconDir, "some_fifo")]);
    const empty = content("response_id,total_fee\n");
    const kinds: (() => Promise<unknown>)[] = [
      () => reconcile(path("dup_big.csv"), empty),
      () => reconcile(empty, path("bad_utf8.csv")),
      () => reconcile(empty, path("some_dir")),
      () => reconcile(empty, path("some_fifo")),
      () => reconcile(content('response_id,total_fee\n"a,1\n'), empty),
      () => reconcile(content("response_id,total_fee\na,1,2\n"), empty),
      () => reconcile(content("response_id,total_fee\na,x\n"), empty),
      () =>
        p.reconClient.auditFiles({
          merchantPayments: content("response_id,saler_id,total_fee\nr,s,1\nr,s,1\n"),
          merchantWithdrawals: content("saler_id,withdraw_money\n"),
          balances: content("saler_id,balance\n"),
        }),
      () =>
        p.reconClient.auditFiles({
          merchantPayments: content("saler_id,total_fee\n"),
          merchantWithdrawals: content("saler_id,withdraw_money\ns,1.5\n"),
          balances: content("saler_id,balance\n"),
        }),
      () => p.reconClient.auditFiles({ merchantPayments: content("saler_id,total_fee\n"), merchantWithdrawals: content("saler_id,withdraw_money\n"), balances: path("some_fifo") }),
    ];
    for (const kind of kinds) await refusal(kind()); // warm up: lazily opened resources
    const fds = async () => (await readdir("/proc/self/fd")).length;
    const tmpEntries = async () => (await readdir(tmpdir())).filter((n) => n.startsWith("recon-sort-")).length;
    const [fdBefore, treeBefore, tmpBefore] = [await fds(), await tree(p.reconDir), await tmpEntries()];
    for (const kind of kinds) {
      for (let i = 0; i < 50; i++) {
        const e = await refusal(kind());
        expect(e.code).to.equal(Code.InvalidArgument);
      }
    }
    expect(await fds()).to.equal(fdBefore);
    expect(await tree(p.reconDir)).to.deep.equal(treeBefore);
    expect(await tmpEntries()).to.equal(tmpBefore);
  });
});

describe("run ids", () => {
  it("never share a directory, even created in the same millisecond", async () => {
    const root = await mkdtemp(join(tmpdir(), "recon-runs-"));
    try {
      const store = new RunStore(root);
      const made = await Promise.all(Array.from({ length: 1000 }, () => store.create(RunKind.RECONCILIATION, "2026-11-29 12:00:00", 7)));
      expect(new Set(made.map((m) => m.directory)).size).to.equal(1000);
      expect(new Set(made.map((m) => m.runId)).size).to.equal(1000);
      expect((await readdir(root)).length).to.equal(1000);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe("the diff file of a run is what the run's summary says", () => {
  it("has the seed's columns first", async () => {
    const p = await startPlatform({ name: "embedded" });
    try {
      const { run } = await p.reconClient.reconcileFiles({
        orderType: OrderType.WITHDRAWAL,
        merchant: content("response_id,withdraw_money\na,1\n"),
        payment: content("response_id,withdraw_money\na,1\n"),
      });
      const text = await readFile(join(run!.directory, "withdrawal_diff.csv"), "utf8");
      expect(text).to.equal("\ufeffrequest_id,response_id,withdraw_money,diff_type,saler_id,merchant_amount,payment_amount,request_time,response_time\r\n,a,1,F000,,1,1,,\r\n");
    } finally {
      await p.close();
    }
  });
});
