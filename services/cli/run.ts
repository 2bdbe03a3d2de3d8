/**
 * Runs one parsed paycli command: opens the clients it needs, prints its result (a table, or JSON
 * with --json) and turns failures into exit codes. Loaded only once the command line is good.
 */
import { EXIT, ServiceCallError, Services, UsageError } from "./clients.js";
import * as commands from "./commands.js";
import type { CommandContext, Output } from "./commands.js";

const COMMANDS: Record<string, (ctx: CommandContext) => Promise<Output>> = {
  pay: commands.pay,
  withdraw: commands.withdraw,
  refund: commands.refund,
  simulate: commands.simulate,
  settle: commands.settle,
  resolve: commands.resolve,
  balances: commands.balances,
  orders: commands.orders,
  reconcile: commands.reconcile,
  audit: commands.audit,
  "runs list": commands.runsList,
  "runs show": commands.runsShow,
};

function stringify(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v), 2) + "\n";
}

export async function runCommand(name: string, values: commands.OptionValues, positionals: string[]): Promise<number> {
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
