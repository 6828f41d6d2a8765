/**
 * Crash points for tests that must prove nothing is lost when a process dies at the worst moment
 * (between publish and mark, between commit and ack). `FERRY_FAULTS=relay.after_publish` makes the
 * process SIGKILL itself the first time that point is reached. Unset in production: a no-op.
 */
const armed = new Set(
  (process.env.FERRY_FAULTS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

export type FaultPoint =
  | 'relay.after_publish'
  | 'consumer.after_commit'
  | 'rpc.after_commit'
  | 'transfer.after_verify'
  | 'transfer.after_task_failed'
  | 'qa.mid_check'
  | 'qa.after_record';

export function faultPoint(point: FaultPoint): void {
  if (armed.size === 0 || !armed.has(point)) return;
  process.stderr.write(`fault injected at ${point}: killing process ${process.pid}\n`);
  process.kill(process.pid, 'SIGKILL');
  // The signal is delivered asynchronously; block so not one more instruction of the caller runs.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10_000);
}
