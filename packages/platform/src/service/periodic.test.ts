import { describe, expect, it } from 'vitest';
import { silentLogger, waitFor } from '../testing/index.js';
import { Periodic } from './periodic.js';

describe('Periodic', () => {
  it('never starts a run while one is in progress, and runs again after a failure', async () => {
    let active = 0;
    let overlapped = false;
    let runs = 0;
    const task = new Periodic({
      name: 'test task',
      intervalMs: 5,
      initialDelayMs: 0,
      logger: silentLogger(),
      run: async () => {
        runs++;
        overlapped ||= active > 0;
        active++;
        // Far longer than the interval: a timer that did not wait for the run would start another.
        await new Promise((r) => setTimeout(r, 30));
        active--;
        if (runs === 1) throw new Error('first run fails');
      },
    });
    task.start();
    await waitFor(() => runs >= 4, { intervalMs: 5, what: 'four runs' });
    await task.stop();
    expect(overlapped).toBe(false);
  });

  it('stop() waits for the run in progress and no run starts after it', async () => {
    let runs = 0;
    let finished = 0;
    const task = new Periodic({
      name: 'test task',
      intervalMs: 5,
      initialDelayMs: 0,
      logger: silentLogger(),
      run: async () => {
        runs++;
        await new Promise((r) => setTimeout(r, 30));
        finished++;
      },
    });
    task.start();
    await waitFor(() => runs === 1, { intervalMs: 1, what: 'the first run' });
    await task.stop();
    expect(finished).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(runs).toBe(1);
  });
});
