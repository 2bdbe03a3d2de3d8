/**
 * paycli: one command line for the payment platform. It talks gRPC to the payment, merchant and
 * reconciliation services (addresses from flags or PAYMENT_ADDRESS / MERCHANT_ADDRESS /
 * RECON_ADDRESS), prints tables on stdout and progress on stderr.
 *
 * Exit codes: 0 success; 1 the work ran and the answer is a failure (a FAIL order, an unbalanced
 * reconciliation, an audit FAIL); 2 usage error (including a request a service refused as
 * invalid); 3 a service could not be reached.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { checkAddress, EXIT, ServiceCallError, Services, UsageError } from "./clients.js";
import * as commands from "./commands.js";
import type { CommandContext, Output } from "./commands.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

const GLOBAL: Options = {
  payment: { type: "string" },
  merchant: { type: "string" },
  recon: { type: "string" },
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  help: { type: "boolean", short: "h" },
};

interface Command {
  summary: string;
  usage: string;
  options: Options;
  positionals?: number;
  run(ctx: CommandContext): Promise<Output>;
}

const s = { type: "string" } as const;
const b = { type: "boolean" } as const;

const COMMANDS: Record<string, Command> = {
  pay: {
    summary: "send one payment through the merchant",
    usage: "pay --saler ID --amount FEN",
    options: { saler: s, amount: s },
    run: commands.pay,
  },
  withdraw: {
    summary: "send one withdrawal through the merchant",
    usage: "withdraw --saler ID --amount FEN",
    options: { saler: s, amount: s },
    run: commands.withdraw,
  },
  simulate: {
    summary: "fire many payments or withdrawals concurrently, optionally injecting faults",
    usage:
      "simulate [payments|withdrawals] [--count N] [--concurrency N] [--accounts N] [--prefix saler]\n" +
      "           [--min-amount FEN] [--max-amount FEN] [--seed N] [--chunk N]\n" +
      "           [--lost-responses N] [--tampered-amounts N] [--merchant-only N]",
    options: {
      type: s,
      count: s,
      concurrency: s,
      accounts: s,
      prefix: s,
      "min-amount": s,
      "max-amount": s,
      seed: s,
      chunk: s,
      "lost-responses": s,
      "tampered-amounts": s,
      "merchant-only": s,
    },
    positionals: 1,
    run: commands.simulate,
  },
  settle: {
    summary: "settle the credit buffer into balances now",
    usage: "settle [--full-sweep]",
    options: { "full-sweep": b },
    run: commands.settle,
  },
  resolve: {
    summary: "ask the payment system about the merchant's UNKNOWN orders",
    usage: "resolve [--init-older-than SECONDS]",
    options: { "init-older-than": s },
    run: commands.resolve,
  },
  balances: {
    summary: "show account balances (settled and pending)",
    usage: "balances [--saler ID]",
    options: { saler: s },
    run: commands.balances,
  },
  orders: {
    summary: "list the merchant's orders, newest first",
    usage: "orders [--type payment|withdrawal] [--state INIT|SUCCESS|FAIL|UNKNOWN] [--saler ID] [--limit N]",
    options: { type: s, state: s, saler: s, limit: s },
    run: commands.orders,
  },
  reconcile: {
    summary: "reconcile both sides' successful orders (exit 1 when not balanced)",
    usage:
      "reconcile [--key response_id|request_id] [--cutoff 'yyyy-MM-dd HH:mm:ss'] [--resolve-unknown] [--rows N]\n" +
      "reconcile --merchant-file CSV --payment-file CSV [--type payment|withdrawal] [--key ...] [--rows N]",
    options: { key: s, cutoff: s, "resolve-unknown": b, rows: s, "merchant-file": s, "payment-file": s, type: s },
    run: commands.reconcile,
  },
  audit: {
    summary: "audit every account's balance against the merchant's records (exit 1 on FAIL)",
    usage:
      "audit [--cutoff 'yyyy-MM-dd HH:mm:ss'] [--resolve-unknown] [--rows N]\n" +
      "audit --payments-file CSV [--withdrawals-file CSV] --balances-file CSV [--rows N]",
    options: { cutoff: s, "resolve-unknown": b, rows: s, "payments-file": s, "withdrawals-file": s, "balances-file": s },
    run: commands.audit,
  },
  runs: {
    summary: "list reconciliation and audit runs, or show one",
    usage: "runs [list] [--kind reconciliation|audit] [--limit N]\nruns show RUN_ID [--rows N]",
    options: { kind: s, limit: s, rows: s },
    positionals: 2,
    run: commands.runs,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    "usage: paycli <command> [options]",
    "",
    "commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "global options:",
    "  --payment HOST:PORT   payment service gRPC address   (env PAYMENT_ADDRESS, default 127.0.0.1:50051)",
    "  --merchant HOST:PORT  merchant service gRPC address  (env MERCHANT_ADDRESS, default 127.0.0.1:50052)",
    "  --recon HOST:PORT     reconciliation gRPC address    (env RECON_ADDRESS, default 127.0.0.1:50053)",
    "  --json                print the result as JSON instead of tables",
    "  -q, --quiet           no progress output",
    "  -h, --help            this text, or a command's usage with `paycli <command> --help`",
    "",
    "exit codes: 0 success, 1 business failure (FAIL order, unbalanced reconciliation, audit FAIL),",
    "            2 usage error or invalid request, 3 a service could not be reached",
    "",
  ].join("\n");
}

function commandUsage(name: string, command: Command): string {
  return `usage: paycli ${command.usage.split("\n").join("\n       paycli ")}\n\n${command.summary}\n`;
}

/** The first word that is neither an option nor the value of a global option. */
function findCommand(args: string[]): { name: string | undefined; rest: string[] } {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") break;
    if (a.startsWith("-")) {
      const flag = a.replace(/^--?/, "");
      if (!a.includes("=") && GLOBAL[flag]?.type === "string") i++;
      continue;
    }
    return { name: a, rest: [...args.slice(0, i), ...args.slice(i + 1)] };
  }
  return { name: undefined, rest: args };
}

function stringify(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v), 2) + "\n";
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { name, rest } = findCommand(argv);
  const command = name === undefined ? undefined : COMMANDS[name];
  if (name === undefined || name === "help") {
    (name === "help" || argv.includes("--help") || argv.includes("-h") ? process.stdout : process.stderr).write(usage());
    return name === undefined && !argv.includes("--help") && !argv.includes("-h") ? EXIT.usage : EXIT.ok;
  }
  if (!command) {
    process.stderr.write(`paycli: unknown command "${name}"\n\n${usage()}`);
    return EXIT.usage;
  }
  let services: Services | undefined;
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: { ...GLOBAL, ...command.options }, allowPositionals: true, strict: true });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      process.stdout.write(commandUsage(name, command));
      return EXIT.ok;
    }
    if (positionals.length > (command.positionals ?? 0)) throw new UsageError(`unexpected argument "${positionals[command.positionals ?? 0]}"`);
    const address = (flag: "payment" | "merchant" | "recon", variable: string, fallback: string) =>
      checkAddress(flag, (values[flag] as string | undefined) ?? (env[variable] || fallback));
    services = new Services({
      payment: address("payment", "PAYMENT_ADDRESS", "127.0.0.1:50051"),
      merchant: address("merchant", "MERCHANT_ADDRESS", "127.0.0.1:50052"),
      recon: address("recon", "RECON_ADDRESS", "127.0.0.1:50053"),
    });
    const output = await command.run({
      services,
      values: values as commands.OptionValues,
      positionals,
      progress: values.quiet !== true && values.json !== true,
    });
    process.stdout.write(values.json ? stringify(output.json) : output.text);
    return output.exitCode;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`paycli ${name}: ${err.message}\n\n${commandUsage(name, command)}`);
      return EXIT.usage;
    }
    if (err instanceof ServiceCallError) {
      process.stderr.write(`paycli ${name}: ${err.describe()}\n`);
      return err.exitCode;
    }
    process.stderr.write(`paycli ${name}: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT.businessFailure;
  } finally {
    services?.close();
  }
}

const code = await main(process.argv.slice(2));
// Let stdout drain before leaving; gRPC channels are closed already.
process.exitCode = code;
