/**
 * Top self-time frames of V8 CPU profiles (`node --cpu-prof`), by function and by package.
 *
 *   npx tsx bench/profileSummary.ts data/bench/profiles/payment-payments.cpuprofile [top]
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface FrameShare {
  frame: string;
  percent: number;
}

/** Where a frame's code lives: a package name, "node:…", "(program)", or our own path. */
function owner(url: string): string {
  if (url === "") return "(V8 / native)";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "node_modules/".length).split("/");
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (url.startsWith("node:")) return "node core";
  const at = url.indexOf("/services/");
  if (at >= 0) return url.slice(at + 1);
  const gen = url.indexOf("/gen/");
  return gen >= 0 ? url.slice(gen + 1) : url;
}

export function summarize(path: string, top = 15): { frames: FrameShare[]; owners: FrameShare[]; totalMs: number } {
  const profile = JSON.parse(readFileSync(path, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  let total = 0;
  const frames = new Map<string, number>();
  const owners = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const name = n.callFrame.functionName || "(anonymous)";
    if (name === "(idle)") continue;
    total += us;
    const where = n.callFrame.url ? `${owner(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : "";
    const key = where ? `${name} ${where}` : name;
    frames.set(key, (frames.get(key) ?? 0) + us);
    const o = n.callFrame.url ? owner(n.callFrame.url) : name.startsWith("(") ? name : "(V8 / native)";
    owners.set(o, (owners.get(o) ?? 0) + us);
  }
  const share = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([frame, us]) => ({ frame, percent: (100 * us) / total }));
  return { frames: share(frames), owners: share(owners), totalMs: total / 1000 };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const top = Number(process.argv[3] ?? 20);
  const s = summarize(process.argv[2]!, top);
  console.log(`busy ${s.totalMs.toFixed(0)} ms (idle excluded)\n\nself time by frame:`);
  for (const f of s.frames) console.log(`  ${f.percent.toFixed(1).padStart(5)}%  ${f.frame}`);
  console.log("\nself time by package:");
  for (const f of s.owners) console.log(`  ${f.percent.toFixed(1).padStart(5)}%  ${f.frame}`);
}
