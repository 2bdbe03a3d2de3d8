/**
 * Reconciliation and audit runs on disk: each run is a directory under the reconciliation
 * directory holding its CSV files and summary.json (the Run message as JSON). The directory is
 * the record, so runs survive restarts and any instance sharing the directory can list them.
 */
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { RunKind, RunSchema, type Run } from "../../gen/recon/v1/recon_pb.js";
import { idPrefix } from "../shared/orders/time.js";

/** yyyyMMddHHmmss + milliseconds, the kind, and a random suffix: ids sort by creation time. */
const RUN_ID = /^\d{17}-(recon|audit)-[0-9a-f]{4}$/;

export function isRunId(text: string): boolean {
  return RUN_ID.test(text);
}

function damaged(runId: string, directory: string, why: string): Run {
  return create(RunSchema, { runId, kind: runId.includes("-audit-") ? RunKind.AUDIT : RunKind.RECONCILIATION, directory, damaged: why });
}

export class RunStore {
  constructor(readonly root: string) {}

  /** A new, empty run directory. Ids sort by creation time; two runs never share one. */
  async create(kind: RunKind, createdTime: string, millisecond: number): Promise<{ runId: string; directory: string }> {
    const ms = String(millisecond).padStart(3, "0");
    await mkdir(this.root, { recursive: true });
    for (;;) {
      const runId = `${idPrefix(createdTime)}${ms}-${kind === RunKind.AUDIT ? "audit" : "recon"}-${randomBytes(2).toString("hex")}`;
      const directory = join(this.root, runId);
      try {
        // Not recursive: a directory that already exists is another run's, and fails here.
        await mkdir(directory);
        return { runId, directory };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    }
  }

  async save(run: Run): Promise<void> {
    const path = join(run.directory, "summary.json");
    const text = JSON.stringify(toJson(RunSchema, run, { useProtoFieldName: true, alwaysEmitImplicit: true }), null, 2);
    await writeFile(`${path}.tmp`, text + "\n", "utf8");
    await rename(`${path}.tmp`, path);
  }

  /**
   * A finished run, or undefined when there is none. A summary that cannot be read or parsed
   * gives a run marked damaged (its id, kind and directory), so one bad file hides nothing else.
   */
  async get(runId: string): Promise<Run | undefined> {
    if (!isRunId(runId)) return undefined;
    const directory = join(this.root, runId);
    let text: string;
    try {
      text = await readFile(join(directory, "summary.json"), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      return damaged(runId, directory, `summary.json cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    try {
      const run = fromJson(RunSchema, JSON.parse(text) as JsonValue);
      if (run.runId !== runId) return damaged(runId, directory, `summary.json names another run`);
      return run;
    } catch (err) {
      return damaged(runId, directory, `summary.json is not a valid run summary: ${String((err as Error).message).slice(0, 100)}`);
    }
  }

  /** Finished runs, newest first, after the run id `before` when given. */
  async list(kind: RunKind, limit: number, before?: string): Promise<Run[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    const wanted = kind === RunKind.UNSPECIFIED ? undefined : kind === RunKind.AUDIT ? "-audit-" : "-recon-";
    const ids = names
      .filter((n) => isRunId(n) && (!wanted || n.includes(wanted)) && (before === undefined || n < before))
      .sort()
      .reverse();
    const runs: Run[] = [];
    for (const id of ids) {
      if (runs.length >= limit) break;
      const run = await this.get(id);
      if (run) runs.push(run);
    }
    return runs;
  }
}
