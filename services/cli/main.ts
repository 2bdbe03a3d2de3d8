/**
 * paycli: one command line for the payment platform. It talks gRPC to the payment, merchant and
 * reconciliation services (addresses from flags or PAYMENT_ADDRESS / MERCHANT_ADDRESS /
 * RECON_ADDRESS), prints tables on stdout and progress on stderr.
 *
 * Arguments are parsed by commander (help with every option's description and default), and
 * every argument is checked before any call, so a usage error never reaches a service. The
 * commands and the gRPC clients are loaded only once the command line is known to be good, which
 * keeps `--help` and usage errors fast.
 *
 * Exit codes: 0 success; 1 the work ran and the answer is a failure (a FAIL order, an unbalanced
 * reconciliation, an audit FAIL); 2 usage error (including a request a service refused as
 * invalid); 3 a service could not be reached.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";

const EXIT_USAGE = 2;

/** A whole number within bounds, as commander's argument parser (refusals exit 2). */
function wholeNumber(min: number, max: number): (raw: string) => string {
  return (raw) => {
    if (!/^-?\d+$/.test(raw)) throw new InvalidArgumentError(`must be a whole number, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}, got ${n}`);
    return raw;
  };
}

/** An amount or seed, read as a bigint. */
function wholeBig(min: bigint, max: bigint, what = "a whole number"): (raw: string) => string {
  return (raw) => {
    if (!/^-?\d+$/.test(raw)) throw new InvalidArgumentError(`must be ${what}, got "${raw}"`);
    const n = BigInt(raw);
    if (n < min || n > max) throw new InvalidArgumentError(`must be between ${min} and ${max}, got ${n}`);
    return raw;
  };
}

const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
function address(raw: string): string {
  if (!ADDRESS.test(raw)) throw new InvalidArgumentError(`must be host:port, got "${raw}"`);
  return raw;
}

const BUSINESS_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;
function businessTime(raw: string): string {
  if (raw !== "" && !BUSINESS_TIME.test(raw)) throw new InvalidArgumentError(`must be "yyyy-MM-dd HH:mm:ss", got "${raw}"`);
  if (raw !== "") {
    const [y, mo, d, h, mi, s] = raw.split(/[- :]/).map(Number) as [number, number, number, number, number, number];
    const date = new Date(Date.UTC(y, mo - 1, d));
    if (date.getUTCDate() !== d || date.getUTCMonth() !== mo - 1 || h > 23 || mi > 59 || s > 59) {
      throw new InvalidArgumentError(`is not a real time: "${raw}"`);
    }
  }
  return raw;
}

function oneOf(...choices: string[]): (raw: string) => string {
  return (raw) => {
    if (!choices.includes(raw)) throw new InvalidArgumentError(`must be one of ${choices.join(", ")}, got "${raw}"`);
    return raw;
  };
}

const AMOUNT = wholeBig(1n, 1_000_000_000_000n, "a whole number of fen");
const option = (flags: string, description: string) => new Option(flags, description);

/** What a command's action hands to the commands module. */
interface Invocation {
  name: string;
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/** The options of a command by their long names (as commands/options.ts reads them), with the globals. */
function invocation(name: string, cmd: Command, positionals: string[]): Invocation {
  const values: Record<string, string | boolean | undefined> = {};
  for (let c: Command | null = cmd; c; c = c.parent) {
    const opts = c.opts();
    for (const o of c.options) {
      const key = o.long!.replace(/^--/, "");
      if (values[key] === undefined) values[key] = opts[o.attributeName()] as string | boolean | undefined;
    }
  }
  return { name, values, positionals };
}

export function buildProgram(run: (inv: Invocation) => Promise<void>): Command {
  const program = new Command("paycli")
    .description("One command line for the payment platform: orders, simulations, settlement, reconciliation and audit.")
    .addOption(option("--payment <host:port>", "payment service gRPC address").env("PAYMENT_ADDRESS").default("127.0.0.1:50051").argParser(address))
    .addOption(option("--merchant <host:port>", "merchant service gRPC address").env("MERCHANT_ADDRESS").default("127.0.0.1:50052").argParser(address))
    .addOption(option("--recon <host:port>", "reconciliation service gRPC address").env("RECON_ADDRESS").default("127.0.0.1:50053").argParser(address))
    .addOption(option("--json", "print the result as JSON instead of tables"))
    .addOption(option("-q, --quiet", "no progress output"))
    .addHelpText(
      "after",
      "\nExit codes: 0 success, 1 business failure (FAIL order, unbalanced reconciliation, audit FAIL),\n" +
        "            2 usage error or invalid request, 3 a service could not be reached.\n" +
        "Times are the services' business time (BUSINESS_TIME_ZONE, default Asia/Shanghai).\n" +
        "OPERATOR_TOKEN, when set, is sent with every call (settle, simulate, resolve and the runs need it when the services require one).",
    )
    .showHelpAfterError("(paycli <command> --help shows its options)")
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false });

  const action =
    (name: string) =>
    async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const positionals = (args.slice(0, -2) as (string | undefined)[]).filter((a): a is string => typeof a === "string");
      await run(invocation(name, cmd, positionals));
    };

  program
    .command("pay")
    .description("send one payment through the merchant")
    .addOption(option("--saler <id>", "receiving account").makeOptionMandatory())
    .addOption(option("--amount <fen>", "amount, an integer number of fen").argParser(AMOUNT).makeOptionMandatory())
    .action(action("pay"));

  program
    .command("withdraw")
    .description("send one withdrawal through the merchant")
    .addOption(option("--saler <id>", "account to withdraw from").makeOptionMandatory())
    .addOption(option("--amount <fen>", "amount, an integer number of fen").argParser(AMOUNT).makeOptionMandatory())
    .action(action("withdraw"));

  program
    .command("refund")
    .description("refund all or part of one of the merchant's successful payments (退款)")
    .addOption(option("--of <request_id>", "request_id of the merchant's successful payment to refund").makeOptionMandatory())
    .addOption(option("--amount <fen>", "amount to refund, an integer number of fen").argParser(AMOUNT).makeOptionMandatory())
    .action(action("refund"));

  program
    .command("simulate")
    .description(
      "fire many payments, withdrawals or refunds (of the accounts' successful payments) concurrently, optionally injecting faults; one Simulate call, so the same seed gives the same orders as the Simulate RPC",
    )
    .argument("[type]", "payments, withdrawals or refunds", oneOf("payments", "withdrawals", "refunds", "payment", "withdrawal", "refund"), "payments")
    .addOption(option("--count <n>", "orders to send").argParser(wholeNumber(1, 1_000_000)).default("1000"))
    .addOption(option("--concurrency <n>", "requests in flight at once").argParser(wholeNumber(1, 1024)).default("16"))
    .addOption(option("--accounts <n>", "accounts the orders are spread over").argParser(wholeNumber(1, 100_000)).default("10"))
    .addOption(option("--prefix <text>", "account name prefix (accounts are <prefix>1..<prefix>N)").default("saler"))
    .addOption(option("--min-amount <fen>", "smallest amount").argParser(AMOUNT).default("1"))
    .addOption(option("--max-amount <fen>", "largest amount").argParser(AMOUNT).default("10000"))
    .addOption(option("--seed <n>", "seed of the orders (the same seed gives the same orders)").argParser(wholeBig(0n, 2n ** 62n)).default(undefined, "random"))
    .addOption(
      option("--chunk <n>", "send the run as several Simulate calls of this size, for a progress bar; chunks are seeded seed, seed+1, …").argParser(
        wholeNumber(1, 1_000_000),
      ),
    )
    .addOption(option("--lost-responses <n>", "orders whose answer the merchant drops (F113)").argParser(wholeNumber(0, 1_000_000)).default("0"))
    .addOption(option("--tampered-amounts <n>", "orders the merchant stores with another amount (F115)").argParser(wholeNumber(0, 1_000_000)).default("0"))
    .addOption(option("--merchant-only <n>", "orders never sent, recorded as SUCCESS by the merchant (F114)").argParser(wholeNumber(0, 1_000_000)).default("0"))
    .action(action("simulate"));

  program
    .command("settle")
    .description("settle the credit buffer into balances now")
    .addOption(option("--full-sweep", "also sweep the orders table for unbuffered credits"))
    .action(action("settle"));

  program
    .command("resolve")
    .description("ask the payment system about the merchant's UNKNOWN (and stale INIT) orders, and report those it leaves alone and why")
    .addOption(option("--init-older-than <seconds>", "resolve INIT orders older than this (0: the merchant's RESOLVE_INIT_AFTER_SECONDS)").argParser(wholeNumber(0, 86_400 * 30)).default("0"))
    .action(action("resolve"));

  program
    .command("balances")
    .description("show account balances (settled and pending)")
    .addOption(option("--saler <id>", "one account only"))
    .action(action("balances"));

  program
    .command("orders")
    .description("list the merchant's orders, newest first, a page at a time")
    .addOption(option("--type <type>", "payment, withdrawal or refund (default: all)").argParser(oneOf("payment", "withdrawal", "refund", "payments", "withdrawals", "refunds")))
    .addOption(option("--state <state>", "INIT, SUCCESS, FAIL or UNKNOWN (default: all)").argParser((raw) => oneOf("INIT", "SUCCESS", "FAIL", "UNKNOWN")(raw.toUpperCase())))
    .addOption(option("--saler <id>", "one account only"))
    .addOption(option("--limit <n>", "orders on this page").argParser(wholeNumber(1, 100_000)).default("20"))
    .addOption(option("--page <token>", "the next-page token a previous page printed").argParser((raw) => {
      if (!/^\d{1,19}$/.test(raw)) throw new InvalidArgumentError(`must be the token a previous page printed, got "${raw}"`);
      return raw;
    }))
    .action(action("orders"));

  program
    .command("reconcile")
    .description("reconcile both sides' successful orders, live or from CSV files (exit 1 when not balanced)")
    .addOption(option("--key <key>", "match orders by this id").argParser(oneOf("response_id", "request_id")).default("response_id"))
    .addOption(option("--cutoff <time>", 'compare orders answered at or before "yyyy-MM-dd HH:mm:ss" (default: now minus RECON_CUTOFF_LAG_SECONDS)').argParser(businessTime))
    .addOption(option("--resolve-unknown", "resolve the merchant's UNKNOWN orders first"))
    .addOption(option("--rows <n>", "difference rows to print").argParser(wholeNumber(0, 1_000_000)).default("20"))
    .addOption(option("--merchant-file <csv>", "merchant's orders as CSV (with --payment-file: reconcile files instead)"))
    .addOption(option("--payment-file <csv>", "payment system's orders as CSV"))
    .addOption(option("--type <type>", "order type of the files").argParser(oneOf("payment", "withdrawal", "refund", "payments", "withdrawals", "refunds")).default("payment"))
    .action(action("reconcile"));

  program
    .command("audit")
    .description("audit every account's balance against the merchant's records, live or from CSV files (exit 1 on FAIL)")
    .addOption(option("--cutoff <time>", 'audit orders answered at or before "yyyy-MM-dd HH:mm:ss"').argParser(businessTime))
    .addOption(option("--resolve-unknown", "resolve the merchant's UNKNOWN orders first"))
    .addOption(option("--rows <n>", "failing accounts to print").argParser(wholeNumber(0, 1_000_000)).default("20"))
    .addOption(option("--payments-file <csv>", "merchant's successful payments as CSV (audit files instead)"))
    .addOption(option("--withdrawals-file <csv>", "merchant's successful withdrawals as CSV"))
    .addOption(option("--balances-file <csv>", "payment system's balances as CSV"))
    .action(action("audit"));

  const runs = program.command("runs").description("list reconciliation and audit runs, or show one (exit 1 for an unbalanced run)");
  runs
    .command("list", { isDefault: true })
    .description("list runs, newest first")
    .addOption(option("--kind <kind>", "reconciliation or audit (default: both)").argParser(oneOf("reconciliation", "audit")))
    .addOption(option("--limit <n>", "runs to list").argParser(wholeNumber(1, 1000)).default("20"))
    .action(action("runs list"));
  runs
    .command("show")
    .description("show one run and its differences (exit 1 when it is not balanced)")
    .argument("<run-id>", "the run's id, as `runs list` prints it")
    .addOption(option("--rows <n>", "difference rows to print").argParser(wholeNumber(0, 1_000_000)).default("20"))
    .action(action("runs show"));

  return program;
}

/** Every command fails with exit code 2 on a usage error, with commander's message on stderr. */
function exitOverrideAll(cmd: Command): void {
  cmd.exitOverride();
  for (const sub of cmd.commands) exitOverrideAll(sub);
}

export async function main(argv: string[]): Promise<number> {
  // An address variable set but empty means "not set".
  for (const v of ["PAYMENT_ADDRESS", "MERCHANT_ADDRESS", "RECON_ADDRESS"]) if (process.env[v] === "") delete process.env[v];
  let code = 0;
  const program = buildProgram(async (inv) => {
    const { runCommand } = await import("./run.js");
    code = await runCommand(inv.name, inv.values, inv.positionals);
  });
  exitOverrideAll(program);
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_USAGE;
    throw err;
  }
  return code;
}

process.exitCode = await main(process.argv.slice(2));
