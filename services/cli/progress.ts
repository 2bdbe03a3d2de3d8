/**
 * A progress bar on stderr with rate and ETA. On a terminal it redraws one line; otherwise (a
 * pipe, a log file) it writes a plain line at every tenth of the way, so logs stay readable.
 */
export interface ProgressOptions {
  label: string;
  total: number;
  stream?: NodeJS.WriteStream;
  /** Off: nothing is written. */
  enabled?: boolean;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export class ProgressBar {
  private readonly stream: NodeJS.WriteStream;
  private readonly started = performance.now();
  private readonly tty: boolean;
  private readonly enabled: boolean;
  private done = 0;
  private lastTenth = -1;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
    this.enabled = options.enabled ?? true;
    if (this.enabled && this.tty) {
      // Redraw now and then, so elapsed time moves while a long chunk is in flight.
      this.timer = setInterval(() => this.draw(), 500);
      this.timer.unref();
      this.draw();
    }
  }

  /** The number of items finished so far. */
  update(done: number): void {
    this.done = done;
    if (!this.enabled) return;
    if (this.tty) this.draw();
    else {
      const tenth = Math.floor((done * 10) / Math.max(1, this.options.total));
      if (tenth > this.lastTenth) {
        this.lastTenth = tenth;
        this.stream.write(`${this.line()}\n`);
      }
    }
  }

  finish(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.enabled && this.tty) {
      this.draw();
      this.stream.write("\n");
    }
  }

  line(): string {
    const { total, label } = this.options;
    const elapsed = (performance.now() - this.started) / 1000;
    const rate = elapsed > 0 ? this.done / elapsed : 0;
    const eta = rate > 0 ? (total - this.done) / rate : Number.POSITIVE_INFINITY;
    const fraction = total > 0 ? this.done / total : 1;
    const width = 30;
    const filled = Math.round(fraction * width);
    const bar = "#".repeat(filled) + "-".repeat(width - filled);
    const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
    const count = `${this.done}/${total}`.padStart(String(total).length * 2 + 1);
    return `${label} [${bar}] ${count} ${pct}  ${rate.toFixed(0).padStart(6)}/s  elapsed ${formatDuration(elapsed)}  ETA ${this.done >= total ? "0s" : formatDuration(eta)}`;
  }

  private draw(): void {
    this.stream.write(`\r${this.line()}\x1b[K`);
  }
}
