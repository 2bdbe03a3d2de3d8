/**
 * CPU used by processes that are not the benchmark's own, while a benchmark ran: on a shared
 * two-core machine that is what makes a figure low, and the report says so next to it.
 * The benchmark's own processes are this process's descendants; MariaDB and Redis serve the
 * benchmark, so they count as its own too.
 */
import { readdirSync, readFileSync } from "node:fs";

interface Proc {
  pid: number;
  ppid: number;
  name: string;
  cpuSeconds: number;
}

function processes(): Map<number, Proc> {
  const all = new Map<number, Proc>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const name = stat.slice(stat.indexOf("(") + 1, close);
      const f = stat.slice(close + 2).split(" ");
      all.set(Number(entry), { pid: Number(entry), ppid: Number(f[1]), name, cpuSeconds: (Number(f[11]) + Number(f[12])) / 100 });
    } catch {
      // the process ended meanwhile
    }
  }
  return all;
}

const SERVING = new Set(["mariadbd", "mysqld", "redis-server"]);

function foreign(all: Map<number, Proc>, root: number): Map<number, Proc> {
  const own = new Set<number>([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of all.values()) {
      if (!own.has(p.pid) && own.has(p.ppid)) {
        own.add(p.pid);
        grew = true;
      }
    }
  }
  return new Map([...all].filter(([pid, p]) => !own.has(pid) && !SERVING.has(p.name)));
}

/** Starts counting; the returned function tells the CPU-seconds others used since, by name. */
export function watchOtherLoad(): () => { cpuSeconds: number; wallSeconds: number; top: string } {
  const started = performance.now();
  const before = foreign(processes(), process.pid);
  return () => {
    const after = foreign(processes(), process.pid);
    const byName = new Map<string, number>();
    let total = 0;
    for (const p of after.values()) {
      const used = p.cpuSeconds - (before.get(p.pid)?.cpuSeconds ?? 0);
      if (used <= 0) continue;
      total += used;
      byName.set(p.name, (byName.get(p.name) ?? 0) + used);
    }
    const top = [...byName]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([n, s]) => `${n} ${s.toFixed(1)} s`)
      .join(", ");
    return { cpuSeconds: total, wallSeconds: (performance.now() - started) / 1000, top };
  };
}
