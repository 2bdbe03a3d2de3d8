/**
 * Runs one parsed paycli command: opens the clients it needs, prints its result (a table, or JSON
 * with --json) and turns failures into exit codes. Loaded only once the command line is good.
 */
import { EXIT, ServiceCallError, Services, UsageError } from "./clients.js";
import { balances, settle } from "./commands/accounts.js";
import type { CommandContext, OptionValues, Output } from "./commands/options.js";
import { orders, pay, refund, resolve, withdraw } from "./commands/orders.js";
import { audit, reconcile, runsList, runsShow } from "./commands/reconciliation.js";
import { simulate } from "./commands/simulate.js";

const COMMANDS: Record<string, (ctx: CommandContext) => Promise<Output>> = {
  pay,
  withdraw,
  refund,
  simulate,
  settle,
  resolve,
  balances,
  orders,
  reconcile,
  audit,
  "runs list": runsList,
  "runs show": runsShow,
};

function stringify(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v), 2) + "\n";
}

export async function runCommand(name: string, values: OptionValues, positionals: string[]): Promise<number> {
  const services = new Services({
    payment: values.payment as string,
    merchant: values.merchant as string,
    recon: values.recon as string,
  });
  try {
    const output = await COMMANDS[name]!({
      services,
      values,
      positionals,
      progress: values.quiet !== true && values.json !== true,
    });
    process.stdout.write(values.json ? stringify(output.json) : output.text);
    return output.exitCode;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`paycli ${name}: ${err.message}\n(paycli ${name} --help shows its options)\n`);
      return EXIT.usage;
    }
    if (err instanceof ServiceCallError) {
      process.stderr.write(`paycli ${name}: ${err.describe()}\n`);
      return err.exitCode;
    }
    process.stderr.write(`paycli ${name}: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT.businessFailure;
  } finally {
    services.close();
  }
}
