/**
 * Scrapes a /metrics endpoint and reads samples out of it, parsed as the Prometheus text format
 * by parse-prometheus-text-format. The whole text is parsed (the parser throws on a line that is
 * not in the format). The parser merges the series of a labelled histogram into one, so the
 * samples are read one line at a time, each line parsed by the same parser.
 */
import { expect } from "chai";
import parsePrometheusTextFormat, { type ParsedFamily } from "parse-prometheus-text-format";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  families: ParsedFamily[];
  samples: Sample[];
  text: string;
  /** Sum of the samples of `name` whose labels include `labels` (0 when none). */
  value(name: string, labels?: Record<string, string>): number;
  /** A histogram's observation count over the series whose labels include `labels`. */
  count(name: string, labels?: Record<string, string>): number;
  has(name: string): boolean;
}

function matches(sample: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(labels).every(([k, v]) => sample[k] === v);
}

export function parseScrape(text: string): Scrape {
  const families = parsePrometheusTextFormat(text);
  for (const f of families) {
    expect(f.help, `HELP of ${f.name}`).to.not.equal("");
    expect(f.type, `TYPE of ${f.name}`).to.not.equal("UNTYPED");
  }
  const samples: Sample[] = text
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const [family] = parsePrometheusTextFormat(`${line}\n`);
      const m = family!.metrics[0]!;
      return { name: family!.name, labels: m.labels ?? {}, value: Number(m.value) };
    });
  const value = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && matches(s.labels, labels)).reduce((sum, s) => sum + s.value, 0);
  return {
    families,
    samples,
    text,
    has: (name) => families.some((f) => f.name === name),
    value,
    count(name, labels = {}) {
      expect(families.find((f) => f.name === name)?.type, name).to.equal("HISTOGRAM");
      return value(`${name}_count`, labels);
    },
  };
}

export async function scrape(httpUrl: string, init?: RequestInit): Promise<Scrape> {
  const res = await fetch(`${httpUrl}/metrics`, init);
  expect(res.status).to.equal(200);
  expect(res.headers.get("content-type")).to.match(/^text\/plain; version=0\.0\.4/);
  return parseScrape(await res.text());
}
