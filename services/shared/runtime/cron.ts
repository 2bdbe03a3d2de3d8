/** Jobs run on a node-schedule cron rule (with seconds), one run at a time. */
import schedule from "node-schedule";
import type { EnvReader } from "./config.js";
import { ConfigError } from "../errors.js";

/** A cron rule with seconds (six fields), or "off"; a malformed rule stops start-up naming the variable. */
export function readCron(env: EnvReader, name: string, fallback: string): string {
  const rule = env.string(name, fallback);
  if (rule === "off") return rule;
  const job = schedule.scheduleJob(rule, () => {});
  if (!job) throw new ConfigError(name, `must be a cron rule such as "*/5 * * * * *" or "off", got "${rule}"`);
  job.cancel();
  return rule;
}

export interface CronJob {
  /** No further runs; resolves once the run under way, if any, has finished. */
  stop(): Promise<void>;
}

/**
 * Runs `run` on the rule ("off": never), unless the last run still runs: a slow run is not
 * stacked on. `run` reports its own outcome; a rejection is ignored here.
 */
export function scheduleUnlessRunning(rule: string, run: () => Promise<unknown>): CronJob {
  let running: Promise<unknown> | undefined;
  const job =
    rule === "off"
      ? undefined
      : schedule.scheduleJob(rule, () => {
          if (running) return; // the previous run is still going
          running = run()
            .catch(() => {})
            .finally(() => (running = undefined));
        });
  return {
    async stop() {
      job?.cancel();
      await running;
    },
  };
}
