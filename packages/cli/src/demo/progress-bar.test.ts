import { describe, expect, it } from 'vitest';
import { ProgressBar } from './progress-bar.js';

function sink(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, out: { isTTY, columns: 80, write: (text: string) => writes.push(text) } };
}

describe('ProgressBar', () => {
  it('redraws one line in place on a terminal, with bytes, percent and MB/s', () => {
    let clock = 0;
    const { writes, out } = sink(true);
    const bar = new ProgressBar({ total: 4_000_000, out, now: () => clock });
    clock = 1000;
    bar.add(1_000_000);
    clock = 1050; // within the redraw interval: not drawn
    bar.add(1_000_000);
    clock = 2000;
    bar.add(2_000_000);
    bar.finish();
    expect(writes).toEqual([
      `\r\x1b[Kupload [${'█'.repeat(8)}${'░'.repeat(22)}]  25%  1.00 / 4.00 MB  1.00 MB/s`,
      `\r\x1b[Kupload [${'█'.repeat(30)}] 100%  4.00 / 4.00 MB  2.00 MB/s`,
      `\r\x1b[Kupload [${'█'.repeat(30)}] 100%  4.00 / 4.00 MB  2.00 MB/s`,
      '\n',
    ]);
  });

  it('prints a plain line at each quarter when the output is not a terminal', () => {
    let clock = 0;
    const { writes, out } = sink(false);
    const bar = new ProgressBar({ total: 1_000_000, out, label: 'sent', now: () => clock });
    for (let i = 0; i < 10; i++) {
      clock += 100;
      bar.add(100_000);
    }
    bar.finish();
    expect(writes).toEqual([
      'sent 0.30 / 1.00 MB (30%), 1.00 MB/s\n',
      'sent 0.50 / 1.00 MB (50%), 1.00 MB/s\n',
      'sent 0.80 / 1.00 MB (80%), 1.00 MB/s\n',
      'sent 1.00 / 1.00 MB (100%), 1.00 MB/s\n',
    ]);
  });

  it('never shows more than the total when parts are sent again', () => {
    const { writes, out } = sink(false);
    const bar = new ProgressBar({ total: 100, out, now: () => 1000 });
    bar.add(80);
    bar.add(80);
    bar.finish();
    expect(writes.at(-1)).toMatch(/^upload 0\.00 \/ 0\.00 MB \(100%\)/);
  });
});
