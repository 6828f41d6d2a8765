export interface ProgressBarOptions {
  /** Bytes expected in all. */
  total: number;
  /** Where it draws (stderr or stdout); `isTTY` decides between a bar and plain lines. */
  out: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  /** Shown before the numbers. Default `upload`. */
  label?: string;
  /** Milliseconds between redraws of the bar. Default 100. */
  redrawMs?: number;
  /** The clock (tests). Default `performance.now`. */
  now?: () => number;
}

const MB = 1_000_000;
const mb = (bytes: number) => (bytes / MB).toFixed(bytes < 10 * MB ? 2 : 1);

/**
 * Bytes sent out of a known total, with the rate. On a terminal a bar redrawn in place
 * (`upload [████░░░░]  52%  1.04 / 2.00 MB  3.1 MB/s`); elsewhere (a pipe, a CI log) a plain line at
 * every quarter, so a log shows progress without carriage returns.
 */
export class ProgressBar {
  private sent = 0;
  private readonly started: number;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private quartersShown = 0;
  private readonly now: () => number;

  constructor(private readonly options: ProgressBarOptions) {
    this.now = options.now ?? (() => performance.now());
    this.started = this.now();
  }

  /** Bytes that left; a part sent again counts again, the display stops at the total. */
  add(bytes: number): void {
    this.sent = Math.min(this.options.total, this.sent + bytes);
    if (this.options.out.isTTY) {
      if (this.now() - this.lastDraw >= (this.options.redrawMs ?? 100)) this.draw();
      return;
    }
    const quarters = this.options.total === 0 ? 4 : Math.floor((this.sent / this.options.total) * 4);
    if (quarters > this.quartersShown && quarters < 4) {
      this.quartersShown = quarters;
      this.options.out.write(`${this.line()}\n`);
    }
  }

  /** The final state: the bar completed on its line, or the last plain line. */
  finish(): void {
    if (this.options.out.isTTY) {
      this.draw();
      this.options.out.write('\n');
    } else {
      this.options.out.write(`${this.line()}\n`);
    }
  }

  private rate(): string {
    const seconds = (this.now() - this.started) / 1000;
    return seconds > 0 ? `${mb(this.sent / seconds)} MB/s` : '- MB/s';
  }

  private percent(): number {
    return this.options.total === 0 ? 100 : Math.floor((this.sent / this.options.total) * 100);
  }

  private line(): string {
    return `${this.options.label ?? 'upload'} ${mb(this.sent)} / ${mb(this.options.total)} MB (${this.percent()}%), ${this.rate()}`;
  }

  private draw(): void {
    this.lastDraw = this.now();
    const width = Math.max(10, Math.min(30, (this.options.out.columns ?? 80) - 50));
    const filled = Math.round((this.percent() / 100) * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    this.options.out.write(
      `\r\x1b[K${this.options.label ?? 'upload'} [${bar}] ${String(this.percent()).padStart(3)}%  ` +
        `${mb(this.sent)} / ${mb(this.options.total)} MB  ${this.rate()}`,
    );
  }
}
