/**
 * Groups writes that arrive while others are under way into one statement. On a busy service a
 * database round trip costs more CPU (driver, query builder, the socket write and the loopback
 * wake-up) than the rows it carries, so 64 concurrent payments written as a few multi-row
 * statements cost far less than 64 statements. An idle service pays nothing: a write that finds
 * a free slot goes out at once, alone.
 *
 * `flush` receives the items of one batch and answers one result per item, in order; a rejection
 * rejects every item of the batch.
 */
export class WriteBatcher<T, R> {
  private queue: { item: T; resolve: (r: R) => void; reject: (err: unknown) => void }[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly flush: (items: T[]) => Promise<R[]>,
    private readonly options: { maxInFlight: number; maxBatch: number },
  ) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.options.maxInFlight || this.queue.length === 0) return;
    this.scheduled = true;
    // Whatever else this turn of the event loop submits joins the batch.
    setImmediate(() => {
      this.scheduled = false;
      this.send();
    });
  }

  private send(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.inFlight++;
      this.flush(batch.map((b) => b.item)).then(
        (results) => {
          batch.forEach((b, i) => b.resolve(results[i]!));
          this.done();
        },
        (err: unknown) => {
          for (const b of batch) b.reject(err);
          this.done();
        },
      );
      // Later arrivals wait for a slot and leave together.
      if (this.queue.length < this.options.maxBatch) break;
    }
  }

  private done(): void {
    this.inFlight--;
    this.schedule();
  }
}
